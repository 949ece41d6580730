"""The parts of the engine-worker hop that need no cluster: how a worker's failure becomes an
engine error in the gateway, how a cancellation is passed on, and the gateway's settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.errors import EngineBusy, EngineRequestFailed, EngineTimeout, LanguageUnsupported, VoiceProfileInvalid
from engine.interface import CancelToken
from engine.workers.protocol import WorkerFailure, error_of, failure_of
from gateway.engines import build_engine
from gateway.settings import Settings, SettingsError

REPO_ROOT = Path(__file__).resolve().parents[2]


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


def test_the_shipped_serve_config_is_one_deployable_application_per_engine_without_ingress():
    """deploy/engine-workers.yaml, read by Serve's own schema: no HTTP proxy (workers hand out
    unmarked audio), every application built by our builder from args it accepts, and every
    deployment declaring its resources and replica bounds."""
    import yaml
    from ray.serve.schema import ServeDeploySchema

    from engine.workers.deployment import ENGINE_CLASSES, build_app

    config = ServeDeploySchema.model_validate(
        yaml.safe_load((REPO_ROOT / "deploy" / "engine-workers.yaml").read_text())
    )
    assert config.proxy_location.value == "Disabled"
    assert {app.name for app in config.applications} >= {"embedded", "chatterbox", "f5-tts"}
    for app in config.applications:
        assert app.import_path == "engine.workers.deployment:build_app"
        assert app.args["engine"] in ENGINE_CLASSES
        build_app(app.args)  # binds only: the engine is built in the replica
        (deployment,) = app.deployments
        assert {"num_cpus", "num_gpus"} <= deployment.ray_actor_options.model_fields_set
        assert deployment.max_ongoing_requests == 1
        assert deployment.num_replicas is not None or deployment.autoscaling_config is not None
    chatterbox = next(app for app in config.applications if app.name == "chatterbox")
    assert "py_executable" in chatterbox.runtime_env  # its torch 2.6 never meets the gateway's


def test_worker_args_with_unknown_keys_are_refused():
    from engine.workers.deployment import build_app

    with pytest.raises(ValueError, match="unknown keys"):
        build_app({"engine": "embedded", "replicas": 3})
