"""The bounded executor's limits: queue full, timeout, cancellation, readiness.

The engine here is a small real ``CloningEngine`` whose sentences take a set time, so the
executor's behaviour can be timed exactly; the embedded engine is covered in test_embedded.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time

import numpy as np
import pytest

from engine.errors import (
    EngineBusy,
    EngineCancelled,
    EngineNotReady,
    EngineOutputInvalid,
    EngineTimeout,
    EngineUnavailable,
)
from engine.executor import BoundedExecutor
from engine.interface import (
    CancelToken,
    CloningEngine,
    EngineAudio,
    EngineDescription,
    SynthesisControls,
    VoiceProfile,
)

RATE = 16000
VOICE = VoiceProfile(engine="paced", model_id="paced-1", parameters={}, reference_sha256="0" * 64)


class PacedEngine(CloningEngine):
    """Speaks each sentence as a 0.07 s-per-character buzz after ``sentence_s`` seconds of work."""

    name = "paced"

    def __init__(
        self, *, sentence_s: float = 0.0, load_s: float = 0.0, fail_load: bool = False, output: str = "speech"
    ) -> None:
        self.sentence_s = sentence_s
        self.load_s = load_s
        self.fail_load = fail_load
        self.output = output
        self.sentences_done = 0
        self.warmed = False

    def describe(self) -> EngineDescription:
        return EngineDescription(name="paced", version="1", model_id="paced-1", device="cpu")

    def supported_languages(self) -> frozenset[str]:
        return frozenset({"en"})

    def load(self) -> None:
        time.sleep(self.load_s)
        if self.fail_load:
            raise RuntimeError("weights missing")

    def warm_up(self) -> None:
        self.warmed = True

    def prepare_voice(self, *, references, similarity=None, cancel=None) -> VoiceProfile:
        return VOICE

    def synthesize(self, *, text, language, voice, controls=SynthesisControls(), cancel=None) -> EngineAudio:
        parts = []
        for sentence in text.split(". "):
            if cancel is not None:
                cancel.raise_if_cancelled()
            time.sleep(self.sentence_s)
            t = np.arange(int(0.07 * len(sentence) * RATE)) / RATE
            parts.append(0.3 * np.sin(2 * np.pi * 140 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t)))
            self.sentences_done += 1
        samples = np.concatenate(parts)
        if self.output == "nan":
            samples[10] = np.nan
        elif self.output == "silence":
            samples[:] = 0
        return EngineAudio(samples=samples, sample_rate=RATE)


def started(engine: CloningEngine, **limits) -> BoundedExecutor:
    executor = BoundedExecutor(engine, **limits)
    executor.start(background=False)
    return executor


def test_synthesis_runs_when_ready() -> None:
    executor = started(PacedEngine())
    audio = executor.synthesize(text="Hello there. How are you", language="en", voice=VOICE)
    assert audio.duration_s > 1.0
    assert executor.in_flight == 0


def test_not_ready_until_warm_up_finished() -> None:
    engine = PacedEngine(load_s=0.5)
    executor = BoundedExecutor(engine)
    executor.start()
    assert not executor.ready
    with pytest.raises(EngineNotReady):
        executor.synthesize(text="Hello there", language="en", voice=VOICE)
    assert executor.wait_ready(5)
    assert engine.warmed and executor.load_seconds >= 0.5 and executor.warm_up_seconds is not None


def test_failed_start_up_is_reported_not_hidden() -> None:
    executor = BoundedExecutor(PacedEngine(fail_load=True))
    with pytest.raises(EngineUnavailable, match="weights missing"):
        executor.start(background=False)
    assert not executor.ready
    with pytest.raises(EngineUnavailable):
        executor.synthesize(text="Hello there", language="en", voice=VOICE)


def test_queue_full_raises_busy_with_retry_after() -> None:
    executor = started(PacedEngine(sentence_s=0.6), max_concurrency=1, max_queue=1)
    results: list[object] = []

    def call() -> None:
        try:
            results.append(executor.synthesize(text="Hello there", language="en", voice=VOICE))
        except Exception as exc:  # collected and asserted below
            results.append(exc)

    threads = [threading.Thread(target=call) for _ in range(2)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 2
    while executor.in_flight < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    with pytest.raises(EngineBusy) as busy:
        executor.synthesize(text="Hello there", language="en", voice=VOICE)
    assert busy.value.retry_after >= 1 and busy.value.code == "engine_busy"
    for thread in threads:
        thread.join()
    assert all(isinstance(result, EngineAudio) for result in results)
    # Capacity comes back once the admitted jobs finish.
    assert isinstance(executor.synthesize(text="Hello there", language="en", voice=VOICE), EngineAudio)


def test_timeout_raises_and_cancels_the_running_job() -> None:
    engine = PacedEngine(sentence_s=0.3)
    executor = started(engine, timeout_s=0.5)
    text = ". ".join(["A sentence of words"] * 10)
    begun = time.monotonic()
    with pytest.raises(EngineTimeout):
        executor.synthesize(text=text, language="en", voice=VOICE)
    assert time.monotonic() - begun < 1.0
    deadline = time.monotonic() + 2
    while executor.in_flight and time.monotonic() < deadline:
        time.sleep(0.02)
    assert executor.in_flight == 0  # the job stopped at a sentence boundary, not after 10 sentences
    assert engine.sentences_done < 4


def test_timed_out_job_keeps_its_slot_until_it_stops() -> None:
    executor = started(PacedEngine(sentence_s=0.5), max_concurrency=1, max_queue=0, timeout_s=0.1)
    with pytest.raises(EngineTimeout):
        executor.synthesize(text="One. Two", language="en", voice=VOICE)
    with pytest.raises(EngineBusy):
        executor.synthesize(text="One", language="en", voice=VOICE)


def test_caller_cancellation_stops_the_job() -> None:
    engine = PacedEngine(sentence_s=0.2)
    executor = started(engine)
    token = CancelToken()
    threading.Timer(0.3, token.cancel, kwargs={"reason": "client disconnected"}).start()
    with pytest.raises(EngineCancelled, match="client disconnected"):
        executor.synthesize(text=". ".join(["Words words"] * 10), language="en", voice=VOICE, cancel=token)
    assert engine.sentences_done < 5


def test_job_cancelled_while_queued_never_runs() -> None:
    engine = PacedEngine(sentence_s=0.4)
    executor = started(engine, max_concurrency=1, max_queue=2)
    first = threading.Thread(target=lambda: executor.synthesize(text="Hello there", language="en", voice=VOICE))
    first.start()
    time.sleep(0.05)
    token = CancelToken()
    token.cancel("gave up")
    with pytest.raises(EngineCancelled):
        executor.synthesize(text="Queued job", language="en", voice=VOICE, cancel=token)
    first.join()
    assert engine.sentences_done == 1


def test_async_cancellation_cancels_the_engine_job() -> None:
    engine = PacedEngine(sentence_s=0.2)
    executor = started(engine)

    async def scenario() -> None:
        task = asyncio.create_task(
            executor.synthesize_async(text=". ".join(["Words words"] * 10), language="en", voice=VOICE)
        )
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    deadline = time.monotonic() + 2
    while executor.in_flight and time.monotonic() < deadline:
        time.sleep(0.02)
    assert engine.sentences_done < 5


@pytest.mark.parametrize("output", ["nan", "silence"])
def test_invalid_engine_output_never_leaves_the_executor(output: str) -> None:
    executor = started(PacedEngine(output=output))
    with pytest.raises(EngineOutputInvalid):
        executor.synthesize(text="Hello there", language="en", voice=VOICE)


def test_load_and_warm_up_times_are_logged(caplog) -> None:
    with caplog.at_level("INFO", logger="engine.executor"):
        started(PacedEngine(load_s=0.1))
    messages = [record.getMessage() for record in caplog.records]
    assert any("loaded on cpu in" in message for message in messages)
    assert any("warm-up finished in" in message for message in messages)


def test_job_runs_in_the_callers_context() -> None:
    """What an engine logs from its worker thread must carry the request id of the caller."""
    request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
    seen: list[str | None] = []

    class Recording(PacedEngine):
        def synthesize(self, **kwargs) -> EngineAudio:
            seen.append(request_id.get())
            return super().synthesize(**kwargs)

    executor = started(Recording())
    request_id.set("req-1")
    executor.synthesize(text="Hello there", language="en", voice=VOICE)
    request_id.set("req-2")
    executor.synthesize(text="Hello there", language="en", voice=VOICE)
    assert seen == ["req-1", "req-2"]


def test_a_reserved_place_refuses_others_and_runs_its_own_job() -> None:
    executor = started(PacedEngine(), max_concurrency=1, max_queue=0)
    slot = executor.reserve()
    assert executor.in_flight == 1
    with pytest.raises(EngineBusy):
        executor.reserve()
    with pytest.raises(EngineBusy):  # nor may a job without the place take it
        executor.synthesize(text="Hello there", language="en", voice=VOICE)
    audio = executor.synthesize(text="Hello there", language="en", voice=VOICE, slot=slot)
    assert isinstance(audio, EngineAudio)
    assert executor.in_flight == 0  # the job gave the place back, counted once
    slot.release()  # already used: a no-op, never a place given back twice
    assert executor.in_flight == 0


def test_an_unused_place_is_given_back() -> None:
    executor = started(PacedEngine(), max_concurrency=1, max_queue=0)
    executor.reserve().release()
    assert executor.in_flight == 0
    assert isinstance(executor.synthesize(text="Hello there", language="en", voice=VOICE), EngineAudio)


def test_reserving_before_warm_up_refuses_as_submitting_would() -> None:
    executor = BoundedExecutor(PacedEngine(load_s=0.5))
    executor.start()
    with pytest.raises(EngineNotReady):
        executor.reserve()
    assert executor.wait_ready(5)
    assert executor.in_flight == 0
