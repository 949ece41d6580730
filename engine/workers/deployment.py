"""An engine worker: one cloning engine as a Ray Serve deployment.

A Serve config file (``deploy/engine-workers.yaml``) has one application per engine, each with
``import_path: engine.workers.deployment:build_app``, its own runtime environment and its
resources; ``args`` name the engine and its constructor options. Each replica builds, loads and
warms its engine when it starts, so a replica is only routed to once it can synthesize.

Workers return raw engine audio to the gateway's engine client only. The gateway watermarks,
screens and releases it; a worker must never be reachable by clients (the config runs no Serve
HTTP proxy, and deployments are called through handles on the cluster's private network).

Cancellation: when the gateway cancels a call (client gone, gateway deadline), Serve cancels
the replica's coroutine; the worker then sets the engine's cancel token, so the engine stops at
its next sentence. The worker also sets it itself when the deadline the client sent passes.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from ray import serve
from ray.serve import Application

from engine.errors import EngineCancelled, EngineError, EngineTimeout, EngineUnavailable
from engine.interface import (
    CancelToken,
    CloningEngine,
    EngineAudio,
    ReferenceClip,
    SynthesisControls,
    VoiceProfile,
)
from engine.workers.protocol import WorkerFailure, WorkerInfo, failure_of

log = logging.getLogger("engine.workers")

# The engines a worker can run, by the name the Serve config's ``args.engine`` uses; ``args.
# engine_class`` ("module:Class") names any other CloningEngine importable in the worker.
ENGINE_CLASSES = {
    "embedded": "engine.embedded:EmbeddedEngine",
    "f5-tts": "engine.adapters.f5:F5TtsEngine",
    "chatterbox": "engine.adapters.chatterbox:ChatterboxEngine",
    "gpt-sovits": "engine.adapters.gpt_sovits:GptSovitsEngine",
    "xtts": "engine.adapters.xtts:XttsEngine",
    "zonos": "engine.adapters.zonos:ZonosEngine",
}

DEADLINE_PASSED = "the request's deadline passed"
GATEWAY_CANCELLED = "the gateway cancelled the request"


def build_engine(engine: str | None, *, engine_class: str | None, options: Mapping[str, Any]) -> CloningEngine:
    target = engine_class or ENGINE_CLASSES.get(engine or "")
    if target is None:
        raise EngineUnavailable(f"engine worker: unknown engine {engine!r}; known: {sorted(ENGINE_CLASSES)}")
    module_name, _, class_name = target.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    if not (isinstance(cls, type) and issubclass(cls, CloningEngine)):
        raise EngineUnavailable(f"engine worker: {target} is not a CloningEngine")
    return cls(**dict(options))


class EngineWorker:
    """A replica: one loaded engine; the gateway's engine client calls these methods."""

    def __init__(
        self, engine: str | None = None, *, engine_class: str | None = None, options: Mapping[str, Any] | None = None
    ) -> None:
        self._engine = build_engine(engine, engine_class=engine_class, options=options or {})
        started = time.monotonic()
        self._engine.load()
        self._engine.warm_up()
        description = self._engine.describe()
        log.info(
            "engine worker %s (%s) on %s ready in %.2f s",
            description.name,
            description.model_id,
            description.device,
            time.monotonic() - started,
        )

    async def info(self) -> WorkerInfo:
        return WorkerInfo(
            description=self._engine.describe(),
            languages=frozenset(self._engine.supported_languages()),
            sentence_pause_s=float(self._engine.sentence_pause_s),
        )

    async def prepare_voice(
        self, references: Sequence[ReferenceClip], deadline_s: float
    ) -> VoiceProfile | WorkerFailure:
        token = CancelToken()
        timer = asyncio.get_running_loop().call_later(deadline_s, token.cancel, DEADLINE_PASSED)
        try:
            return await asyncio.to_thread(lambda: self._engine.prepare_voice(references=references, cancel=token))
        except asyncio.CancelledError:
            token.cancel(GATEWAY_CANCELLED)
            raise
        except Exception as exc:
            return _failure(exc, token)
        finally:
            timer.cancel()

    async def synthesize_stream(
        self,
        *,
        text: str,
        language: str,
        voice: VoiceProfile,
        controls: SynthesisControls,
        deadline_s: float,
    ) -> AsyncIterator[EngineAudio | WorkerFailure]:
        """The engine's sentences in text order, each sent as soon as it is synthesized; a
        failure is sent as the last item."""
        token = CancelToken()
        timer = asyncio.get_running_loop().call_later(deadline_s, token.cancel, DEADLINE_PASSED)
        chunks = self._engine.synthesize_stream(
            text=text, language=language, voice=voice, controls=controls, cancel=token
        )
        try:
            while True:
                # The engine runs on a thread: the replica's event loop stays free to receive
                # the cancellation of this call.
                chunk = await asyncio.to_thread(next, chunks, None)
                if chunk is None:
                    return
                yield chunk
        except asyncio.CancelledError:
            token.cancel(GATEWAY_CANCELLED)
            log.info("synthesis cancelled by the gateway")
            raise
        except Exception as exc:
            yield _failure(exc, token)
        finally:
            timer.cancel()


def _failure(exc: Exception, token: CancelToken) -> WorkerFailure:
    if isinstance(exc, EngineCancelled) and token.reason == DEADLINE_PASSED:
        return failure_of(EngineTimeout(f"engine worker stopped the synthesis: {DEADLINE_PASSED}"))
    if isinstance(exc, EngineError):
        return failure_of(exc)
    # An engine bug is a failed request for the gateway, never an unknown exception type.
    log.exception("engine raised %s", type(exc).__name__)
    return WorkerFailure(code="engine_request_failed", detail=f"the engine raised {type(exc).__name__}")


def build_app(args: dict[str, Any]) -> Application:
    """The Serve application builder ``import_path`` names: ``args`` are ``engine`` (a name of
    ``ENGINE_CLASSES``) or ``engine_class``, and ``options`` for the engine's constructor.
    Replicas, resources and autoscaling come from the config's ``deployments`` entry."""
    return worker_application(args)


def worker_application(args: Mapping[str, Any], **deployment_options: Any) -> Application:
    """The application of ``build_app``, with Serve deployment options set in code (for
    programs that deploy without a config file)."""
    unknown = set(args) - {"engine", "engine_class", "options"}
    if unknown:
        raise ValueError(f"engine worker args: unknown keys {sorted(unknown)}")
    options = {"max_ongoing_requests": 1, **deployment_options}
    deployment: serve.Deployment = serve.deployment(name="EngineWorker", **options)(EngineWorker)
    return deployment.bind(args.get("engine"), engine_class=args.get("engine_class"), options=args.get("options") or {})
