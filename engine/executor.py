"""Bounded executor: the only way the gateway pipeline runs an engine.

- ``max_concurrency`` jobs run at once (worker threads); up to ``max_queue`` more wait. Beyond
  that ``EngineBusy`` is raised at once with a Retry-After estimate: the gateway answers 429
  instead of letting requests pile up in memory.
- Each job has a deadline counted from admission (queue time included). When it passes the
  caller gets ``EngineTimeout`` and the job's cancel token is set, so the engine stops at its
  next sentence boundary; its slot stays taken until it really stops, so a slow engine cannot
  be overloaded by retries.
- ``reserve()`` takes a place in that queue before the caller commits to the job (the gateway
  does so before it admits a request and counts a consent use): a full queue refuses there, and
  the job submitted with the slot later never meets a full queue.
- ``start()`` loads and warms the engine in the background; ``ready`` is what ``/readyz`` reports.
  Load and warm-up times are logged.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TypeVar

from engine.checks import check_output
from engine.errors import EngineBusy, EngineNotReady, EngineTimeout, EngineUnavailable
from engine.interface import (
    CancelToken,
    CloningEngine,
    EngineAudio,
    EngineDescription,
    ReferenceClip,
    SpeakerSimilarity,
    SynthesisControls,
    VoiceProfile,
)
from engine.text import normalize_english

logger = logging.getLogger("engine.executor")
T = TypeVar("T")


class EngineSlot:
    """A place in the executor's queue, held until a job uses it or ``release`` gives it back."""

    def __init__(self, executor: BoundedExecutor) -> None:
        self._executor = executor
        self._held = True

    def take(self) -> bool:
        """Hand the place to a job: True once, when it was still held."""
        with self._executor._lock:
            held, self._held = self._held, False
            return held

    def release(self) -> None:
        """Give the place back unused (a no-op once a job took it)."""
        with self._executor._lock:
            if self._held:
                self._held = False
                self._executor._admitted -= 1


class BoundedExecutor:
    def __init__(
        self,
        engine: CloningEngine,
        *,
        max_concurrency: int = 1,
        max_queue: int = 4,
        timeout_s: float = 120.0,
        prepare_timeout_s: float = 60.0,
    ) -> None:
        if max_concurrency < 1 or max_queue < 0 or timeout_s <= 0 or prepare_timeout_s <= 0:
            raise ValueError("max_concurrency >= 1, max_queue >= 0 and positive timeouts are required")
        self.engine = engine
        self.max_concurrency = max_concurrency
        self.max_queue = max_queue
        self.timeout_s = timeout_s
        self.prepare_timeout_s = prepare_timeout_s
        self._pool = ThreadPoolExecutor(max_workers=max_concurrency, thread_name_prefix="engine")
        self._lock = threading.Lock()
        self._admitted = 0
        self._recent_job_s = 5.0  # running estimate of job duration, for Retry-After
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._startup_thread: threading.Thread | None = None
        self.load_seconds: float | None = None
        self.warm_up_seconds: float | None = None

    # --- start-up ------------------------------------------------------------------------

    def start(self, *, background: bool = True) -> None:
        """Load and warm the engine; in the background unless told otherwise."""
        if self._startup_thread is not None or self._ready.is_set():
            return
        if not background:
            self._start_up()
            if self._startup_error is not None:
                raise EngineUnavailable(f"engine start-up failed: {self._startup_error}") from self._startup_error
            return
        self._startup_thread = threading.Thread(target=self._start_up, name="engine-start", daemon=True)
        self._startup_thread.start()

    def _start_up(self) -> None:
        description = self.engine.describe()
        try:
            started = time.monotonic()
            self.engine.load()
            self.load_seconds = time.monotonic() - started
            logger.info(
                "engine %s model %s loaded on %s in %.2f s",
                description.name,
                description.model_id,
                description.device,
                self.load_seconds,
            )
            started = time.monotonic()
            self.engine.warm_up()
            self.warm_up_seconds = time.monotonic() - started
            logger.info("engine %s warm-up finished in %.2f s", description.name, self.warm_up_seconds)
            self._ready.set()
        except Exception as exc:  # start-up failures are kept and reported by /readyz and requests
            self._startup_error = exc
            logger.error("engine %s failed to start: %s", description.name, exc)

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    @property
    def startup_error(self) -> BaseException | None:
        return self._startup_error

    def wait_ready(self, timeout_s: float | None = None) -> bool:
        if self._startup_thread is not None:
            self._startup_thread.join(timeout_s)
        return self.ready

    def describe(self) -> EngineDescription:
        return self.engine.describe()

    @property
    def in_flight(self) -> int:
        """Jobs admitted and not yet finished (running or queued)."""
        with self._lock:
            return self._admitted

    def reserve(self) -> EngineSlot:
        """A place in the queue for a job submitted later with ``slot=``; raises what submitting
        now would (``EngineBusy`` with Retry-After, not ready, failed to start)."""
        self._check_started()
        with self._lock:
            self._refuse_if_full()
            self._admitted += 1
        return EngineSlot(self)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    # --- work ----------------------------------------------------------------------------

    def prepare_voice(
        self,
        *,
        references: Sequence[ReferenceClip],
        similarity: SpeakerSimilarity | None = None,
        cancel: CancelToken | None = None,
        timeout_s: float | None = None,
    ) -> VoiceProfile:
        token = cancel or CancelToken()
        return self._run(
            lambda: self.engine.prepare_voice(references=references, similarity=similarity, cancel=token),
            token=token,
            timeout_s=timeout_s or self.prepare_timeout_s,
        )

    def synthesize(
        self,
        *,
        text: str,
        language: str,
        voice: VoiceProfile,
        controls: SynthesisControls = SynthesisControls(),
        cancel: CancelToken | None = None,
        timeout_s: float | None = None,
        slot: EngineSlot | None = None,
    ) -> EngineAudio:
        """Run the job; with a ``slot`` from `reserve`, in that place of the queue."""
        token = cancel or CancelToken()

        def job() -> EngineAudio:
            audio = self.engine.synthesize(text=text, language=language, voice=voice, controls=controls, cancel=token)
            # Checked here as well as in engines: no engine output leaves the executor unchecked.
            spoken = normalize_english(text) if language.lower().startswith("en") else text
            return check_output(audio, spoken_chars=max(len(text), len(spoken)), speed=controls.speed)

        return self._run(job, token=token, timeout_s=timeout_s or self.timeout_s, slot=slot)

    async def synthesize_async(
        self,
        *,
        text: str,
        language: str,
        voice: VoiceProfile,
        controls: SynthesisControls = SynthesisControls(),
        cancel: CancelToken | None = None,
        timeout_s: float | None = None,
    ) -> EngineAudio:
        """For async callers: runs ``synthesize`` without blocking the event loop; cancelling the
        awaiting task cancels the synthesis."""
        token = cancel or CancelToken()
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(
                None,
                lambda: self.synthesize(
                    text=text, language=language, voice=voice, controls=controls, cancel=token, timeout_s=timeout_s
                ),
            )
        except asyncio.CancelledError:
            token.cancel("caller went away")
            raise

    def _check_started(self) -> None:
        if self._startup_error is not None:
            raise EngineUnavailable(f"engine failed to start: {self._startup_error}")
        if not self._ready.is_set():
            raise EngineNotReady("engine warm-up has not finished")

    def _refuse_if_full(self) -> None:
        """Call with the lock held."""
        if self._admitted >= self.max_concurrency + self.max_queue:
            waiting = self._admitted - self.max_concurrency + 1
            retry_after = max(1, math.ceil(self._recent_job_s * waiting / self.max_concurrency))
            raise EngineBusy(f"engine queue is full ({self._admitted} requests admitted)", retry_after=retry_after)

    def _run(self, job: Callable[[], T], *, token: CancelToken, timeout_s: float, slot: EngineSlot | None = None) -> T:
        if slot is None:
            self._check_started()
        future = self._admit(job, token, slot)
        try:
            return future.result(timeout=timeout_s)
        except FutureTimeout:
            token.cancel("timed out")
            future.cancel()  # drops it if still queued; a running job stops at its next check
            raise EngineTimeout(f"engine did not finish within {timeout_s:.1f} s") from None
        except BaseException:
            if not future.done():
                token.cancel("caller interrupted")
            raise

    def _admit(self, job: Callable[[], T], token: CancelToken, slot: EngineSlot | None) -> Future[T]:
        if slot is None or not slot.take():
            with self._lock:
                self._refuse_if_full()
                self._admitted += 1

        def run() -> T:
            token.raise_if_cancelled()  # timed out or cancelled while still queued
            started = time.monotonic()
            try:
                return job()
            finally:
                elapsed = time.monotonic() - started
                with self._lock:
                    self._recent_job_s = 0.8 * self._recent_job_s + 0.2 * elapsed

        # The job runs in the caller's context: what it logs carries the caller's request id.
        future = self._pool.submit(contextvars.copy_context().run, run)

        def release(_: Future[T]) -> None:
            with self._lock:
                self._admitted -= 1

        future.add_done_callback(release)
        return future
