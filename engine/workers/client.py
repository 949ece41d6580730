"""The gateway's engine client for engine workers on Ray Serve (``CLONEGATE_ENGINE=ray``).

It is a `CloningEngine` like any adapter, so the gateway's bounded executor, output checks and
pipeline stay as they are: the worker synthesizes, this client receives its raw audio sentence
by sentence, and the gateway marks, screens and releases it. Nothing of the engine (no model,
no engine package) is loaded in the gateway process.

- Cancellation: a cancelled token (client gone, the executor's deadline) cancels the Serve
  call, which cancels the replica's coroutine and sets the engine's own token there. Each call
  also carries its deadline, which the worker enforces by itself.
- Failures become the `engine.errors` the gateway maps already: a worker's engine error keeps
  its class (sent as a code), a replica that died mid-request is `EngineRequestFailed` (or the
  whole synthesis runs again on another replica, ``retries`` times, since no audio has left the
  gateway yet), Serve's back-pressure is `EngineBusy`, an undeployed application
  `EngineUnavailable`, a passed deadline `EngineTimeout`.
- What a worker returns is checked before the executor's output checks: only `EngineAudio`,
  one sample rate per request, the rate the pipeline accepts.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

from engine.checks import ALLOWED_SAMPLE_RATES
from engine.errors import (
    EngineBusy,
    EngineCancelled,
    EngineError,
    EngineNotReady,
    EngineOutputInvalid,
    EngineRequestFailed,
    EngineTimeout,
    EngineUnavailable,
)
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
from engine.workers.protocol import WorkerFailure, WorkerInfo, error_of

log = logging.getLogger("engine.workers.client")

# How long past its own deadline the client waits for the worker to report it before giving up.
DEADLINE_GRACE_S = 5.0


class WorkerLost(EngineRequestFailed):
    """The replica serving the call died or became unreachable before it finished."""


class RayServeEngine(CloningEngine):
    def __init__(
        self,
        *,
        app_name: str,
        address: str | None = "auto",
        timeout_s: float = 120.0,
        prepare_timeout_s: float = 90.0,
        load_timeout_s: float = 600.0,
        retries: int = 1,
    ) -> None:
        try:
            import ray  # noqa: F401  (checked now so start-up fails, not the first request)
            from ray import serve  # noqa: F401
        except ImportError as exc:
            raise EngineUnavailable("package ray[serve] is not installed (extra 'workers')") from exc
        if not app_name:
            raise EngineUnavailable("the engine worker's Serve application name is empty")
        self._app_name = app_name
        self._address = address
        self._timeout_s = timeout_s
        self._prepare_timeout_s = prepare_timeout_s
        self._load_timeout_s = load_timeout_s
        self._retries = retries
        self._handle: Any = None
        self._info: WorkerInfo | None = None
        self._lock = threading.Lock()

    # --- description and start-up ------------------------------------------------------

    def describe(self) -> EngineDescription:
        if self._info is None:  # before load(): what is known from settings
            return EngineDescription(
                name=f"ray-serve:{self._app_name}", version="unknown", model_id="unknown", device="engine worker"
            )
        return self._info.description

    def supported_languages(self) -> frozenset[str]:
        return self._require_info().languages

    def load(self) -> None:
        """Join the Ray cluster (unless this process already has) and ask the application's
        workers what they run; waits while the workers are still starting."""
        import ray
        from ray import serve
        from ray.serve.exceptions import RayServeException

        with self._lock:
            if self._info is not None:
                return
            if not ray.is_initialized():
                ray.init(address=self._address, log_to_driver=False, logging_level=logging.WARNING)
            deadline = time.monotonic() + self._load_timeout_s
            while self._handle is None:
                try:
                    self._handle = serve.get_app_handle(self._app_name)
                except RayServeException as exc:
                    # The gateway may start before the workers are deployed: wait for them.
                    if time.monotonic() >= deadline:
                        raise EngineUnavailable(
                            f"no engine worker application {self._app_name!r} on the cluster: {exc}"
                        ) from exc
                    time.sleep(min(2.0, max(0.0, deadline - time.monotonic())))
            remaining = max(1.0, deadline - time.monotonic())
            info = self._unary(self._handle.info.remote(), cancel=CancelToken(), timeout_s=remaining)
            if not isinstance(info, WorkerInfo):
                raise EngineRequestFailed(f"engine worker answered {type(info).__name__} to info()")
            self.name = info.description.name
            self._info = info

    def _require_info(self) -> WorkerInfo:
        if self._info is None:
            raise EngineNotReady(f"engine worker application {self._app_name!r} has not been reached yet")
        return self._info

    # --- work --------------------------------------------------------------------------

    def prepare_voice(
        self,
        *,
        references: Sequence[ReferenceClip],
        similarity: SpeakerSimilarity | None = None,
        cancel: CancelToken | None = None,
    ) -> VoiceProfile:
        # The similarity function wraps the gateway's speaker encoder, which stays in the
        # gateway: workers prepare without it (the embedded engine then follows the pitch ratio).
        self._require_info()
        token = cancel or CancelToken()
        response = self._handle.prepare_voice.remote(list(references), self._prepare_timeout_s)
        profile = self._unary(response, cancel=token, timeout_s=self._prepare_timeout_s + DEADLINE_GRACE_S)
        if isinstance(profile, WorkerFailure):
            raise error_of(profile)
        if not isinstance(profile, VoiceProfile):
            raise EngineRequestFailed(f"engine worker answered {type(profile).__name__} to prepare_voice()")
        return profile

    def synthesize(
        self,
        *,
        text: str,
        language: str,
        voice: VoiceProfile,
        controls: SynthesisControls = SynthesisControls(),
        cancel: CancelToken | None = None,
    ) -> EngineAudio:
        info = self._require_info()
        token = cancel or CancelToken()
        for attempt in range(self._retries + 1):
            try:
                chunks = list(
                    self.synthesize_stream(text=text, language=language, voice=voice, controls=controls, cancel=token)
                )
            except WorkerLost:
                # Nothing has left the gateway: the whole text can run again on another replica.
                if attempt == self._retries or token.cancelled:
                    raise
                log.warning("engine worker lost mid-request; retrying on another replica")
                continue
            if not chunks:
                raise EngineOutputInvalid("engine worker returned no audio")
            return concatenate_chunks(chunks, gap_s=info.sentence_pause_s)
        raise AssertionError("unreachable")  # the loop returns or raises

    def synthesize_stream(
        self,
        *,
        text: str,
        language: str,
        voice: VoiceProfile,
        controls: SynthesisControls = SynthesisControls(),
        cancel: CancelToken | None = None,
    ) -> Iterator[EngineAudio]:
        self._require_info()
        token = cancel or CancelToken()
        token.raise_if_cancelled()
        stream = self._handle.options(stream=True).synthesize_stream.remote(
            text=text, language=language, voice=voice, controls=controls, deadline_s=self._timeout_s
        )
        rate: int | None = None
        finished = False
        try:
            with _CancelOnToken(stream, token, timeout_s=self._timeout_s + DEADLINE_GRACE_S) as watch:
                iterator = iter(stream)
                while True:
                    try:
                        item = next(iterator)
                    except StopIteration:
                        finished = True
                        return
                    except Exception as exc:
                        finished = True  # the call is over on the worker's side too
                        raise _translated(exc, token=token, timed_out=watch.timed_out) from exc
                    if isinstance(item, WorkerFailure):
                        finished = True  # a failure is the worker's last item
                        raise error_of(item)
                    if not isinstance(item, EngineAudio):
                        raise EngineOutputInvalid(f"engine worker sent {type(item).__name__}, not audio")
                    if item.sample_rate not in ALLOWED_SAMPLE_RATES:
                        raise EngineOutputInvalid(f"engine worker sent audio at {item.sample_rate!r} Hz")
                    if rate is not None and item.sample_rate != rate:
                        raise EngineOutputInvalid(
                            f"engine worker changed sample rate from {rate} to {item.sample_rate} Hz"
                        )
                    rate = item.sample_rate
                    yield item
        finally:
            if not finished:  # refused a piece, or the caller stopped reading: stop the engine
                stream.cancel()

    def _unary(self, response: Any, *, cancel: CancelToken, timeout_s: float) -> object:
        with _CancelOnToken(response, cancel, timeout_s=timeout_s) as watch:
            try:
                return response.result()
            except Exception as exc:
                raise _translated(exc, token=cancel, timed_out=watch.timed_out) from exc


class _CancelOnToken:
    """Cancels a Serve call when the token is cancelled or ``timeout_s`` passes."""

    def __init__(self, response: Any, token: CancelToken, *, timeout_s: float) -> None:
        self._response = response
        self._token = token
        self._timeout_s = timeout_s
        self.timed_out = False

    def __enter__(self) -> _CancelOnToken:
        self._unsubscribe = self._token.on_cancel(self._response.cancel)
        self._timer = threading.Timer(self._timeout_s, self._expire)
        self._timer.daemon = True
        self._timer.start()
        return self

    def _expire(self) -> None:
        self.timed_out = True
        self._response.cancel()

    def __exit__(self, *exc_info: object) -> None:
        self._timer.cancel()
        self._unsubscribe()


def _translated(exc: BaseException, *, token: CancelToken, timed_out: bool) -> EngineError:
    """The engine error for what a Serve call raised."""
    import concurrent.futures

    from ray import exceptions as ray_errors
    from ray.serve import exceptions as serve_errors

    if isinstance(exc, EngineError):
        return exc
    if timed_out:
        return EngineTimeout("engine worker did not answer before the deadline")
    cancelled = (serve_errors.RequestCancelledError, ray_errors.TaskCancelledError, concurrent.futures.CancelledError)
    if isinstance(exc, cancelled) or token.cancelled:
        return EngineCancelled(f"synthesis stopped: {token.reason or 'cancelled'}")
    if isinstance(exc, serve_errors.BackPressureError):
        return EngineBusy(f"engine workers are saturated: {exc}", retry_after=max(1, math.ceil(exc.retry_after_s or 1)))
    if isinstance(exc, serve_errors.DeploymentUnavailableError):
        return EngineUnavailable(f"engine worker deployment is unavailable: {exc.message}")
    lost = (
        ray_errors.RayActorError,  # ActorDiedError, ActorUnavailableError
        ray_errors.WorkerCrashedError,
        ray_errors.NodeDiedError,
        serve_errors.ReplicaUnavailableError,
    )
    if isinstance(exc, lost):
        return WorkerLost(f"engine worker lost mid-request: {type(exc).__name__}")
    if isinstance(exc, ray_errors.GetTimeoutError | TimeoutError):
        return EngineTimeout("engine worker did not answer in time")
    return EngineRequestFailed(f"engine worker call failed: {type(exc).__name__}")
