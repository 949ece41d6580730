"""gateway/engines.py: the configured engine and executor are built from settings."""

from __future__ import annotations

import time

import numpy as np
import pytest
import soundfile as sf
from fastapi import FastAPI
from fastapi.testclient import TestClient

from engine.adapters.xtts import XttsEngine
from engine.embedded import EmbeddedEngine
from gateway.engines import build_engine, build_executor, install_engine, similarity_from_embedder
from gateway.readiness import Readiness
from gateway.settings import Settings, SettingsError, load_settings
from tests.engine.servers.running import RunningServer
from tests.engine.servers.xtts_streaming_server import Model as XttsModel
from tests.engine.servers.xtts_streaming_server import build_app as build_xtts_app


def test_default_is_the_embedded_engine() -> None:
    assert isinstance(build_engine(Settings()), EmbeddedEngine)


def test_executor_limits_come_from_settings() -> None:
    settings = load_settings(engine_max_concurrency=2, engine_max_queue=7, engine_timeout_seconds=30)
    executor = build_executor(settings)
    assert (executor.max_concurrency, executor.max_queue, executor.timeout_s) == (2, 7, 30)


@pytest.mark.parametrize(
    ("engine", "missing"),
    [
        ("xtts", "CLONEGATE_ENGINE_URL"),
        ("zonos", "CLONEGATE_ENGINE_URL"),
        ("gpt-sovits", "CLONEGATE_ENGINE_SHARED_DIR"),
    ],
)
def test_missing_engine_setting_is_named(engine: str, missing: str) -> None:
    overrides = {"engine": engine}
    if engine == "gpt-sovits":
        overrides["engine_url"] = "http://127.0.0.1:9880"
    with pytest.raises(SettingsError, match=missing):
        build_engine(load_settings(**overrides))


def test_unknown_engine_is_refused() -> None:
    with pytest.raises(SettingsError, match="CLONEGATE_ENGINE"):
        load_settings(engine="tortoise")


@pytest.mark.parametrize("engine", ["chatterbox", "f5-tts"])
def test_engines_with_their_own_torch_never_run_inside_the_gateway(engine: str, tmp_path) -> None:
    settings = load_settings(engine=engine, engine_checkpoint=tmp_path)
    app = FastAPI()
    with pytest.raises(SettingsError, match=r"own engine worker environment.*CLONEGATE_ENGINE=ray"):
        install_engine(app, settings, readiness=Readiness())


def test_readyz_engine_check_turns_true_after_warm_up() -> None:
    with RunningServer(build_xtts_app(XttsModel())) as server:
        settings = load_settings(engine="xtts", engine_url=server.url)
        assert isinstance(build_engine(settings), XttsEngine)
        app = FastAPI()
        readiness = Readiness()
        executor = install_engine(app, settings, readiness=readiness)
        assert readiness.failing() == ["engine"]
        with TestClient(app):
            deadline = time.monotonic() + 10
            while readiness.failing() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert readiness.failing() == []
            assert executor.load_seconds is not None


class SpectrumEmbedder:
    """A small real embedder: the unit-normalised long-term log spectrum (64 bands)."""

    def __init__(self) -> None:
        self.calls = 0

    def embed(self, audio: np.ndarray, *, sample_rate: int) -> np.ndarray:
        self.calls += 1
        frames = audio[: len(audio) // 512 * 512].reshape(-1, 512)
        spectrum = np.log(np.abs(np.fft.rfft(frames, axis=1)) + 1e-6).mean(axis=0)[:256]
        vector = spectrum.reshape(64, 4).mean(axis=1)
        vector = vector - vector.mean()
        return vector / np.linalg.norm(vector)


def test_similarity_from_embedder_embeds_the_reference_once(speech_dir) -> None:
    embedder = SpectrumEmbedder()
    similarity = similarity_from_embedder(embedder)
    james, rate = sf.read(speech_dir / "en_james.wav", dtype="float32")
    karen, karen_rate = sf.read(speech_dir / "en_karen.wav", dtype="float32")
    half = len(james) // 2
    reference = james[:half].copy()
    same = similarity(james[half:], rate, reference, rate)
    other = similarity(karen, karen_rate, reference, rate)
    assert same > other and -1.0 <= other <= same <= 1.0
    assert embedder.calls == 3  # reference once, each candidate once


def test_engine_resampled_full_scale_recording_is_scored(speech_dir) -> None:
    """A browser records at full scale; the engine's resampling returns it slightly over 1.0,
    which the real speaker embedder refuses unless the similarity clips the overshoot."""
    from policy.speaker import ResemblyzerEmbedder

    james, rate = sf.read(speech_dir / "en_james.wav", dtype="float32")
    overshooting = james * np.float32(1.004 / np.abs(james).max())
    score = similarity_from_embedder(ResemblyzerEmbedder())(james, rate, overshooting, rate)
    assert score > 0.95  # the same clip, louder
