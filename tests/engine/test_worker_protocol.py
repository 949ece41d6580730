"""The parts of the engine-worker hop that need no cluster: how a worker's failure becomes an
engine error in the gateway, how a cancellation is passed on, and the gateway's settings."""

from __future__ import annotations

import pytest

from engine.errors import EngineBusy, EngineRequestFailed, EngineTimeout, LanguageUnsupported, VoiceProfileInvalid
from engine.interface import CancelToken
from engine.workers.protocol import WorkerFailure, error_of, failure_of
from gateway.engines import build_engine
from gateway.settings import Settings, SettingsError


@pytest.mark.parametrize(
    "error", [LanguageUnsupported("no fr"), VoiceProfileInvalid("other engine"), EngineTimeout("late")]
)
def test_a_worker_engine_error_keeps_its_class(error):
    again = error_of(failure_of(error))
    assert type(again) is type(error) and str(error) in str(again)


def test_a_busy_worker_keeps_its_retry_after():
    again = error_of(failure_of(EngineBusy("queue full", retry_after=7)))
    assert isinstance(again, EngineBusy) and again.retry_after == 7


@pytest.mark.parametrize("code", ["engine_error", "made_up_code", ""])
def test_a_worker_cannot_pass_off_an_unknown_code_as_anything_but_a_failure(code):
    assert type(error_of(WorkerFailure(code=code, detail="?"))) is EngineRequestFailed


def test_cancellation_is_passed_on_once_and_at_once_when_already_cancelled():
    token = CancelToken()
    calls: list[str] = []
    token.on_cancel(lambda: calls.append("first"))
    unsubscribe = token.on_cancel(lambda: calls.append("gone"))
    unsubscribe()
    token.cancel("client went away")
    token.cancel("timed out")
    assert calls == ["first"] and token.reason == "timed out"
    token.on_cancel(lambda: calls.append("late"))
    assert calls == ["first", "late"]


def test_ray_mode_needs_the_worker_application_named(tmp_path):
    with pytest.raises(SettingsError, match="CLONEGATE_ENGINE_WORKER_APP"):
        build_engine(Settings(mode="dev", data_dir=tmp_path, engine="ray"))


def test_ray_mode_loads_no_engine_in_the_gateway(tmp_path):
    engine = build_engine(Settings(mode="dev", data_dir=tmp_path, engine="ray", engine_worker_app="embedded"))
    assert engine.describe().name == "ray-serve:embedded"  # nothing is reached before load()
