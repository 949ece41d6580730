"""Builds the configured cloning engine and its bounded executor from settings.

Construction runs in ``create_app``: a missing package, checkpoint, shared folder or URL fails
the start-up with the setting named. Loading and warm-up run in the background after start-up;
``/readyz`` reports the ``engine`` check false until warm-up finished. Only the synthesis
pipeline calls the executor: no route or CLI command returns engine audio directly.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
from fastapi import FastAPI

from engine import BoundedExecutor, CloningEngine, EngineUnavailable, SpeakerSimilarity
from gateway.lifespan import run_during_lifespan
from gateway.readiness import NotReady, Readiness
from gateway.settings import Settings, SettingsError

log = logging.getLogger("clonegate.engine")


def _required(settings: Settings, *names: str) -> None:
    missing = [f"CLONEGATE_{name.upper()}" for name in names if getattr(settings, name) in (None, "")]
    if missing:
        raise SettingsError(f"engine {settings.engine!r} needs " + ", ".join(missing))


def _url(settings: Settings) -> str:
    _required(settings, "engine_url")
    assert settings.engine_url is not None  # checked just above
    return settings.engine_url


# Their packages pin a torch and numpy of their own (Chatterbox 0.1.7: torch 2.6, numpy < 2).
WORKER_ONLY_ENGINES = ("f5-tts", "chatterbox")


def build_engine(settings: Settings) -> CloningEngine:
    """The engine named by ``CLONEGATE_ENGINE``; raises ``SettingsError`` or ``EngineUnavailable``."""
    kind = settings.engine
    if kind == "embedded":
        from engine.embedded import EmbeddedEngine

        return EmbeddedEngine(device=settings.engine_device, max_text_chars=settings.engine_max_text_chars)
    if kind == "gpt-sovits":
        from engine.adapters.gpt_sovits import GptSovitsEngine

        _required(settings, "engine_url", "engine_shared_dir")
        assert settings.engine_shared_dir is not None
        return GptSovitsEngine(
            base_url=_url(settings),
            shared_dir=settings.engine_shared_dir,
            engine_shared_dir=settings.engine_shared_dir_on_engine,
            model_id=settings.engine_model_id or "gpt-sovits",
            timeout_s=settings.engine_timeout_seconds,
        )
    if kind == "xtts":
        from engine.adapters.xtts import XttsEngine

        return XttsEngine(
            base_url=_url(settings),
            model_id=settings.engine_model_id or "xtts_v2",
            timeout_s=settings.engine_timeout_seconds,
        )
    if kind == "zonos":
        from engine.adapters.zonos import ZonosEngine

        return ZonosEngine(
            base_url=_url(settings),
            model_choice=settings.engine_model_id or "Zyphra/Zonos-v0.1-transformer",
            timeout_s=settings.engine_timeout_seconds,
        )
    if kind == "ray":
        from engine.workers.client import RayServeEngine

        _required(settings, "engine_worker_app")
        assert settings.engine_worker_app is not None
        return RayServeEngine(
            app_name=settings.engine_worker_app,
            address=settings.engine_worker_ray_address,
            timeout_s=settings.engine_timeout_seconds,
            prepare_timeout_s=settings.engine_prepare_timeout_seconds,
            retries=settings.engine_worker_retries,
        )
    if kind in WORKER_ONLY_ENGINES:
        raise SettingsError(
            f"CLONEGATE_ENGINE={kind} runs only in its own engine worker environment, never inside the "
            "gateway (its package pins its own torch and numpy): deploy it as a Ray Serve engine worker "
            "(docs/engines.md) and set CLONEGATE_ENGINE=ray"
        )
    raise SettingsError(f"CLONEGATE_ENGINE: unknown engine {kind!r}")


def build_executor(settings: Settings, engine: CloningEngine | None = None) -> BoundedExecutor:
    return BoundedExecutor(
        engine or build_engine(settings),
        max_concurrency=settings.engine_max_concurrency,
        max_queue=settings.engine_max_queue,
        timeout_s=settings.engine_timeout_seconds,
        prepare_timeout_s=settings.engine_prepare_timeout_seconds,
    )


def install_engine(
    app: FastAPI, settings: Settings, *, readiness: Readiness, engine: CloningEngine | None = None
) -> BoundedExecutor:
    """The executor for the configured engine, with its ``engine`` readiness check registered and
    its loading and warm-up started in the background when the app starts."""
    try:
        executor = build_executor(settings, engine)
    except EngineUnavailable as exc:
        raise SettingsError(f"CLONEGATE_ENGINE={settings.engine}: {exc}") from exc
    readiness.register("engine", _engine_warm(executor), fix=ENGINE_FIX)

    def start() -> None:
        description = executor.describe()
        log.info(
            "engine %s (%s) on %s: loading in the background",
            description.name,
            description.model_id,
            description.device,
        )
        executor.start(background=not settings.engine_warm_before_serving)

    run_during_lifespan(app, start=start, stop=executor.shutdown)
    return executor


ENGINE_FIX = (
    "wait while the engine loads and warms up; if it failed, correct the CLONEGATE_ENGINE* settings "
    "the error names (docs/engines.md) and restart"
)


def _engine_warm(executor: BoundedExecutor) -> Callable[[], bool]:
    def check() -> bool:
        if executor.startup_error is not None:
            raise NotReady(f"the engine failed to start: {executor.startup_error}")
        if not executor.ready:
            raise NotReady("the engine is still loading and warming up")
        return True

    return check


def similarity_from_embedder(embedder: object) -> SpeakerSimilarity:
    """Wrap a speaker embedder (``embed(audio, *, sample_rate) -> unit vector``) as the similarity
    function ``prepare_voice`` takes. The engine passes the same reference array for every
    candidate, so its embedding is computed once per preparation."""
    embed: Callable[..., np.ndarray] = embedder.embed  # type: ignore[attr-defined]
    references: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def similarity(candidate: np.ndarray, candidate_rate: int, reference: np.ndarray, reference_rate: int) -> float:
        cached = references.get(id(reference))
        if cached is None or cached[0] is not reference:
            cached = (reference, embed(_full_scale(reference), sample_rate=reference_rate))
            references[id(reference)] = cached
        vector = embed(_full_scale(candidate), sample_rate=candidate_rate)
        return float(np.dot(vector, cached[1]))

    return similarity


def _full_scale(audio: np.ndarray) -> np.ndarray:
    """The engine resamples and loudness-normalises the clips it scores: a recording at full scale
    (a browser's, at 48 kHz) comes back a fraction of a percent over it, which the speaker
    embedder refuses as out of range. Clipping that overshoot changes nothing it measures."""
    return np.clip(audio.astype(np.float32), -1.0, 1.0)
