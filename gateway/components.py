"""Builds the components every use case shares (engine executor, watermark stack, speaker
embedder, protected-speaker list, text rules, voice vault, C2PA signer) from settings, at start-up.

A component that cannot be built (a missing key file, a model whose hash differs, a
misconfigured list) stops the gateway here with the setting named: nothing is loaded lazily
at the first request, so a running gateway is one whose every check can run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace

from sqlalchemy.orm import Session, sessionmaker

from engine import BoundedExecutor, CloningEngine, EngineUnavailable
from gateway.engines import build_engine
from gateway.keyfiles import c2pa_credentials, voice_storage_key
from gateway.readiness import Readiness
from gateway.settings import Settings, SettingsError
from gateway.synthesis.provenance import ManifestSigner, SigningCredentialInvalid, generate_dev_chain
from gateway.voices.vault import VoiceVault
from gateway.watermarking import build_watermark_stack
from policy.blocklist.calibration import ScoreCalibration
from policy.blocklist.calibrations import builtin_calibration
from policy.blocklist.live import LiveBlocklist
from policy.consent.countermeasure import CountermeasureSpec, OnnxCountermeasure
from policy.errors import PolicyError
from policy.speaker import ResemblyzerEmbedder, SpeakerEmbedder, WindowFusionEmbedder
from policy.speaker_onnx import OnnxModelSpec, OnnxSpeakerEmbedder
from policy.text_rules import TextRules
from watermark import WatermarkStack

log = logging.getLogger("clonegate.components")


def build_manifest_signer(settings: Settings) -> ManifestSigner:
    """The C2PA signer from the configured chain and key; in dev mode with neither configured, a
    throwaway CA and leaf made now (outputs then validate, but only against that CA)."""
    credentials = c2pa_credentials(settings)
    if credentials is None:
        log.warning(
            "signing C2PA manifests with a throwaway development CA; set "
            "CLONEGATE_C2PA_CERTIFICATE_CHAIN_FILE and CLONEGATE_C2PA_SIGNING_KEY_FILE"
        )
        dev = generate_dev_chain()
        return ManifestSigner(certificate_chain_pem=dev.chain_pem, private_key_pem=dev.key_pem)
    chain_pem, key_pem = credentials
    try:
        return ManifestSigner(certificate_chain_pem=chain_pem, private_key_pem=key_pem)
    except SigningCredentialInvalid as exc:
        raise SettingsError(f"CLONEGATE_C2PA_CERTIFICATE_CHAIN_FILE / _SIGNING_KEY_FILE: {exc}") from exc


def build_embedder(settings: Settings) -> SpeakerEmbedder:
    try:
        base: SpeakerEmbedder
        if settings.speaker_embedder == "resemblyzer":
            base = ResemblyzerEmbedder()
        else:
            if settings.speaker_onnx_model is None or not settings.speaker_onnx_sha256:
                raise SettingsError("the onnx speaker embedder needs CLONEGATE_SPEAKER_ONNX_MODEL and _SHA256")
            base = OnnxSpeakerEmbedder(
                OnnxModelSpec(
                    path=settings.speaker_onnx_model,
                    sha256=settings.speaker_onnx_sha256,
                    dimension=settings.speaker_onnx_dimension,
                    name=settings.speaker_onnx_name,
                    front_end=settings.speaker_onnx_front_end,
                )
            )
        return WindowFusionEmbedder(base) if settings.speaker_window_fusion else base
    except PolicyError as exc:
        raise SettingsError(f"CLONEGATE_SPEAKER_EMBEDDER={settings.speaker_embedder}: {exc}") from exc


def load_calibration(settings: Settings, *, model_id: str) -> ScoreCalibration:
    """The configured model's calibration, with the threshold overrides applied; refuses one
    made for another model, and a model that has none."""
    try:
        if settings.speaker_calibration_file is not None:
            calibration = ScoreCalibration.read(settings.speaker_calibration_file)
        else:
            found = builtin_calibration(model_id)
            if found is None:
                raise SettingsError(
                    f"no speaker calibration for {model_id}: run `clonegate blocklist calibrate` on a labelled set "
                    "and set CLONEGATE_SPEAKER_CALIBRATION_FILE"
                )
            calibration = found
        calibration.require_model(model_id)
        return replace(
            calibration,
            deny=calibration.deny if settings.blocklist_deny_threshold is None else settings.blocklist_deny_threshold,
            review=(
                calibration.review
                if settings.blocklist_review_threshold is None
                else settings.blocklist_review_threshold
            ),
        )
    except PolicyError as exc:
        raise SettingsError(f"speaker calibration: {exc}") from exc


@dataclass(frozen=True)
class LoadedModels:
    """The slow-to-load parts: built once per process and shared by every app built from the
    same settings (tests build many apps)."""

    embedder: SpeakerEmbedder
    watermark: WatermarkStack
    engine: CloningEngine
    countermeasure: OnnxCountermeasure | None = None


def load_models(settings: Settings) -> LoadedModels:
    return LoadedModels(
        embedder=build_embedder(settings),
        watermark=build_watermark_stack(settings),
        engine=_engine_or_settings_error(settings),
        countermeasure=build_countermeasure(settings),
    )


def build_countermeasure(settings: Settings) -> OnnxCountermeasure | None:
    """The consent recordings' anti-spoofing model, when one is configured (all three settings)."""
    model, digest, threshold = (
        settings.consent_countermeasure_model,
        settings.consent_countermeasure_sha256,
        settings.consent_countermeasure_threshold,
    )
    if model is None and digest is None and threshold is None:
        return None
    if model is None or digest is None or threshold is None:
        raise SettingsError("CLONEGATE_CONSENT_COUNTERMEASURE_MODEL, _SHA256 and _THRESHOLD are needed together")
    try:
        return OnnxCountermeasure(CountermeasureSpec(path=model, sha256=digest, threshold=threshold))
    except PolicyError as exc:
        raise SettingsError(f"CLONEGATE_CONSENT_COUNTERMEASURE_MODEL: {exc}") from exc


def _engine_or_settings_error(settings: Settings) -> CloningEngine:
    try:
        return build_engine(settings)
    except EngineUnavailable as exc:
        raise SettingsError(f"CLONEGATE_ENGINE={settings.engine}: {exc}") from exc


@dataclass(frozen=True)
class Components:
    """What the use cases share, built once per app."""

    executor: BoundedExecutor
    watermark: WatermarkStack
    embedder: SpeakerEmbedder
    # The configured model's calibration: the list's thresholds and the consent check's.
    speaker_calibration: ScoreCalibration
    blocklist: LiveBlocklist
    text_rules: TextRules
    voices: VoiceVault
    provider: str
    signer: ManifestSigner  # signs each output's C2PA manifest (gateway/synthesis/provenance.py)
    countermeasure: OnnxCountermeasure | None  # scores consent recordings as genuine or synthetic


def build_components(
    settings: Settings,
    *,
    models: LoadedModels,
    executor: BoundedExecutor,
    sessions: sessionmaker[Session],
    readiness: Readiness,
) -> Components:
    """The shared components; registers the ``blocklist`` readiness check."""
    embedder = models.embedder
    try:
        calibration = load_calibration(settings, model_id=embedder.name)
        blocklist = LiveBlocklist(
            session_factory=sessions,
            embedder_name=embedder.name,
            dimension=embedder.dimension,
            thresholds=calibration.thresholds,
            cohort_top_k=calibration.cohort_top_k,
            normalization=calibration.normalization,
            cohort_centering=calibration.cohort_centering,
            poll_seconds=settings.blocklist_poll_seconds,
        )
        text_rules = TextRules(
            max_chars=settings.synthesis_max_text_chars, deny_patterns=settings.synthesis_deny_patterns
        )
    except PolicyError as exc:
        raise SettingsError(str(exc)) from exc
    readiness.register("blocklist", _blocklist_loads(blocklist), fix=_blocklist_fix)
    return Components(
        executor=executor,
        watermark=models.watermark,
        embedder=embedder,
        speaker_calibration=calibration,
        blocklist=blocklist,
        text_rules=text_rules,
        voices=VoiceVault(key_encryption_key=voice_storage_key(settings)),
        provider=settings.provider_name,
        signer=build_manifest_signer(settings),
        countermeasure=models.countermeasure,
    )


def _blocklist_loads(blocklist: LiveBlocklist) -> Callable[[], bool]:
    def check() -> bool:
        blocklist.snapshot()  # raises (not ready) when the list cannot be loaded, e.g. no cohort
        return True

    return check


def _blocklist_fix(problem: str) -> str:
    if "cohort" in problem:
        return (
            "add recordings of at least 5 speakers known not to be protected, one speaker per file: "
            "`clonegate blocklist cohort add FILE...`"
        )
    return "see the problem above; `clonegate db upgrade` if the database has no schema yet"
