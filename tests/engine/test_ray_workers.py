"""Engine workers on a real local Ray cluster (CPU only), deployed with Serve's own `serve run`
from the shipped Serve config: its `embedded` application (the real embedded engine, two
replicas) and a small tone engine (tests/engine/worker_engines.py) where the embedded engine
would make a test slow. The gateway's engine client calls them through deployment handles.

One cluster serves the whole module and is shut down after it: Ray is heavy on a small machine.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import ray
import yaml
from ray import serve

from engine.errors import (
    EngineCancelled,
    EngineOutputInvalid,
    EngineRequestFailed,
    EngineTimeout,
    EngineUnavailable,
    LanguageUnsupported,
)
from engine.executor import BoundedExecutor
from engine.interface import CancelToken, ReferenceClip
from engine.workers.client import RayServeEngine
from tests.gateway import conftest as gateway_conftest
from tests.gateway.synthesis_fixtures import audit_events, consent_uses, read_clip, ready_gateway, synthesize

# The gateway tests' fixtures, for the test that runs the whole pipeline on a worker.
settings = gateway_conftest.settings
claims = gateway_conftest.claims
hs256_token = gateway_conftest.hs256_token
client_token = gateway_conftest.client_token

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVE_CONFIG = REPO_ROOT / "deploy" / "engine-workers.yaml"
TONE = "tests.engine.worker_engines:ToneEngine"
LOGGED_EMBEDDED = "tests.engine.worker_engines:LoggedEmbeddedEngine"


def _test_config(log_dir: Path) -> dict:
    """The shipped config's `embedded` application, as two fixed replicas of the real engine (run
    with a replica logging which process serves), plus a tone-engine application; logical CPUs
    are quartered so four replicas fit the two this cluster has."""
    shipped = yaml.safe_load(SERVE_CONFIG.read_text())
    embedded = next(app for app in shipped["applications"] if app["name"] == "embedded")
    embedded["args"] = {
        "engine_class": LOGGED_EMBEDDED,
        "options": {**embedded["args"]["options"], "log_dir": str(log_dir)},
    }
    tone = {
        **embedded,
        "name": "tone",
        "args": {"engine_class": TONE, "options": {"log_dir": str(log_dir)}},
        "deployments": [dict(embedded["deployments"][0])],
    }
    for app in (embedded, tone):
        deployment = app["deployments"][0]
        deployment.pop("autoscaling_config", None)
        deployment["num_replicas"] = 2
        deployment["ray_actor_options"] = {"num_cpus": 0.5, "num_gpus": 0}
        app["runtime_env"] = {"env_vars": {**app["runtime_env"].get("env_vars", {}), "PYTHONPATH": str(REPO_ROOT)}}
    return {"proxy_location": shipped["proxy_location"], "applications": [embedded, tone]}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A local Ray cluster of 2 logical CPUs with the test config deployed by `serve run`."""
    folder = tmp_path_factory.mktemp("ray-workers")
    config = folder / "engine-workers.yaml"
    config.write_text(yaml.safe_dump(_test_config(folder)))
    context = ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    try:
        serve_cli = Path(sys.executable).with_name("serve")
        subprocess.run(
            [str(serve_cli), "run", "--non-blocking", "--address", context.address_info["gcs_address"], str(config)],
            check=True,
            timeout=180,
            capture_output=True,
        )
        deadline = time.monotonic() + 240
        while not _running(["embedded", "tone"]):
            assert time.monotonic() < deadline, f"applications did not start: {serve.status().applications}"
            time.sleep(1)
        yield folder / "events.log"
    finally:
        serve.shutdown()
        ray.shutdown()


def _running(names: list[str]) -> bool:
    applications = serve.status().applications
    return all(name in applications and applications[name].status == "RUNNING" for name in names)


def _client(app: str, **options) -> RayServeEngine:
    client = RayServeEngine(app_name=app, **options)
    client.load()
    return client


@pytest.fixture(scope="module")
def tone(cluster):
    client = _client("tone", timeout_s=20)
    voice = client.prepare_voice(references=[ReferenceClip(audio=_tone_reference(), sample_rate=16000)])
    return client, voice


def _tone_reference():
    import numpy as np

    return (0.3 * np.sin(2 * np.pi * 200 * np.arange(32000) / 16000)).astype(np.float32)


def _events(log: Path, event: str) -> list[tuple[int, str]]:
    if not log.exists():
        return []
    lines = [line.split(" ", 2) for line in log.read_text().splitlines()]
    return [(int(pid), text) for pid, kind, text in lines if kind == event]


def _kill_when_started(log: Path, text: str) -> threading.Thread:
    """SIGKILL the replica process as soon as it has started synthesizing ``text``."""
    return _when_started(log, text, lambda pid: os.kill(pid, signal.SIGKILL))


def test_serve_config_runs_no_http_proxy(cluster):
    """Workers hand out unmarked audio: nothing but the gateway's handles may reach them."""
    status = serve.status()
    assert status.proxies == {}
    for name in ("embedded", "tone"):
        deployment = status.applications[name].deployments["EngineWorker"]
        assert deployment.replica_states == {"RUNNING": 2}


def test_concurrent_requests_spread_across_both_embedded_replicas(cluster, speech_dir):
    client = _client("embedded", timeout_s=120, prepare_timeout_s=120)
    executor = BoundedExecutor(client, max_concurrency=2, max_queue=0, timeout_s=120)
    executor.start(background=False)
    reference, rate = read_clip(sorted(speech_dir.glob("en_*.wav"))[0], seconds=6)
    voice = executor.prepare_voice(references=[ReferenceClip(audio=reference, sample_rate=rate)], timeout_s=120)
    texts = ["The first replica reads this line.", "The second replica reads that line."]
    with ThreadPoolExecutor(2) as pool:
        outputs = list(pool.map(lambda text: executor.synthesize(text=text, language="en", voice=voice), texts))
    assert all(audio.duration_s > 1.0 for audio in outputs)  # passed the executor's output checks
    served_by = {pid for pid, text in _events(cluster, "started") if text in texts}
    assert len(served_by) == 2


def test_replica_killed_mid_request_runs_again_on_the_other(cluster, tone):
    client, voice = tone
    victim = "Speak slowly, victim of a crash. Then slowly again."
    killer = _kill_when_started(cluster, victim)
    audio = client.synthesize(text=victim, language="en", voice=voice)
    killer.join()
    assert audio.duration_s > 2.0
    runs = [pid for pid, text in _events(cluster, "started") if text == victim]
    assert len(runs) == 2 and runs[0] != runs[1]  # killed on one replica, finished on the other
    for index in range(3):
        assert client.synthesize(text=f"Afterwards, request {index}.", language="en", voice=voice).duration_s > 1.0


def test_replica_killed_mid_request_fails_closed_in_the_pipeline(
    cluster, settings, loaded_models, speech_dir, client_token
):
    """No retries: the gateway records `request.failed`, releases no audio and gives the consent
    use back; the next request is served by the surviving replica."""
    engine = _client("embedded", timeout_s=120, prepare_timeout_s=120, retries=0)
    models = dataclasses.replace(loaded_models, engine=engine)
    with ready_gateway(settings, models, speech_dir, reference_clip=2) as (client, app, voice):
        uses = consent_uses(app, voice.consent_id)
        killer = _kill_when_started(cluster, "The library opens")
        response = synthesize(client, client_token, voice)
        killer.join()
        assert response.status_code == 502, response.text
        assert response.json()["error"] == "engine_request_failed"
        assert not response.headers["content-type"].startswith("audio/")
        event = audit_events(app, voice_id=voice.voice_id)[-1][1]
        assert (event.action.value, event.reason) == ("request.failed", "engine_request_failed")
        assert consent_uses(app, voice.consent_id) == uses  # the use was given back
        response = synthesize(client, client_token, voice)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("audio/")


def _when_started(log: Path, text: str, action) -> threading.Thread:
    """Run ``action(pid)`` as soon as a replica has started synthesizing ``text``."""

    def watch() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for pid, started in _events(log, "started"):
                if started.startswith(text):
                    action(pid)
                    return
            time.sleep(0.01)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    return watcher


@pytest.mark.parametrize("how", ["cancelled", "deadline"])
def test_cancellation_reaches_the_worker(cluster, tone, how):
    client, voice = tone
    text = f"Speak slowly until {how}. And slowly. And slowly. And slowly. And slowly."
    token = CancelToken()
    if how == "cancelled":  # the client went away, or the executor's deadline passed
        _when_started(cluster, text, lambda pid: token.cancel("client went away"))
        expected: type[Exception] = EngineCancelled
    else:  # the deadline the client sends, enforced by the worker itself
        client = _client("tone", timeout_s=0.5)
        expected = EngineTimeout
    with pytest.raises(expected):
        client.synthesize(text=text, language="en", voice=voice, cancel=token)
    deadline = time.monotonic() + 10
    while not any(seen == text for _, seen in _events(cluster, "cancelled")):
        assert time.monotonic() < deadline, "the engine in the worker never saw the cancellation"
        time.sleep(0.05)
    assert not any(seen == text for _, seen in _events(cluster, "finished"))  # it stopped, not finished


@pytest.mark.parametrize("word", ["nan", "silence", "ultrasonic"])
def test_worker_output_that_must_not_be_released_is_refused(tone, word):
    client, voice = tone
    executor = BoundedExecutor(client, timeout_s=20)
    executor.start(background=False)
    with pytest.raises(EngineOutputInvalid):
        executor.synthesize(text=f"This sentence carries {word} audio.", language="en", voice=voice)


def test_a_refused_piece_stops_the_engine_in_the_worker(cluster, tone):
    client, voice = tone
    text = "This is ultrasonic, slowly. Then slowly more. And slowly again. And slowly still."
    with pytest.raises(EngineOutputInvalid):
        client.synthesize(text=text, language="en", voice=voice)
    deadline = time.monotonic() + 10
    while not any(seen == text for _, seen in _events(cluster, "cancelled")):
        assert time.monotonic() < deadline, "the worker kept synthesizing after its audio was refused"
        time.sleep(0.05)


def test_worker_errors_keep_their_engine_error_class(cluster, tone):
    client, voice = tone
    with pytest.raises(LanguageUnsupported):
        client.synthesize(text="Bonjour à tous.", language="fr", voice=voice)
    with pytest.raises(EngineUnavailable):
        _client("no-such-engine", load_timeout_s=1)
    assert issubclass(LanguageUnsupported, Exception) and not issubclass(LanguageUnsupported, EngineRequestFailed)
    assert Counter(pid for pid, _ in _events(cluster, "loaded"))  # replicas were built from the config
