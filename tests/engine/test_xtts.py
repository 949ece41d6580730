"""The XTTS adapter against a stand-in for xtts-streaming-server's ``server/main.py`` that
reproduces upstream's behaviour line by line (``servers/xtts_streaming_server.py``)."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
import soundfile as sf

from engine.adapters.xtts import XttsEngine
from engine.errors import (
    ControlUnsupported,
    EngineCancelled,
    EngineRequestFailed,
    EngineUnavailable,
    LanguageUnsupported,
    VoiceProfileInvalid,
)
from engine.interface import CancelToken, ReferenceClip, SynthesisControls, VoiceProfile
from tests.engine.servers.gpt_sovits_api_v2 import Model as SovitsModel
from tests.engine.servers.gpt_sovits_api_v2 import build_app as build_sovits_app
from tests.engine.servers.running import RunningServer
from tests.engine.servers.xtts_streaming_server import Model, build_app

TEXT = "The birch canoe slid on the smooth planks."


@pytest.fixture(scope="module")
def model() -> Model:
    return Model()


@pytest.fixture(scope="module")
def server(model):
    with RunningServer(build_app(model)) as running:
        yield running


@pytest.fixture(autouse=True)
def fresh(model):
    model.mode, model.delay_s, model.most_streams_at_once = "ok", 0.0, 0
    model.requests.clear()


@pytest.fixture
def xtts(server) -> XttsEngine:
    engine = XttsEngine(base_url=server.url, timeout_s=5.0)
    engine.load()
    return engine


@pytest.fixture(scope="module")
def reference(speech_dir) -> ReferenceClip:
    audio, rate = sf.read(speech_dir / "en_robert.wav", dtype="float32")
    return ReferenceClip(audio, rate)


def test_clone_then_stream(xtts, model, reference) -> None:
    voice = xtts.prepare_voice(references=[reference])
    clone = model.requests[-1]
    assert clone["path"] == "/clone_speaker" and clone["content_type"] == "audio/wav"
    audio = xtts.synthesize(text=TEXT, language="de", voice=VoiceProfile.from_json(voice.to_json()))
    assert model.requests[-1] == {
        "path": "/tts_stream",
        "text": TEXT,
        "language": "de",
        "latent_frames": 32,
        "embedding_dim": 512,
    }
    assert audio.sample_rate == 24000 and abs(audio.duration_s - 0.07 * len(TEXT)) < 0.01
    assert np.max(np.abs(audio.samples)) > 0.2  # PCM after the zero-length header was decoded


def test_chinese_is_sent_as_the_models_zh_cn(xtts, model, reference) -> None:
    # Upstream's model config calls Chinese "zh-cn"; "zh" fails inside the stream after a 200.
    voice = xtts.prepare_voice(references=[reference])
    xtts.synthesize(text="今天天气很好。", language="zh", voice=voice)
    assert model.requests[-1]["language"] == "zh-cn"


def test_languages_come_from_the_servers_model(xtts, reference) -> None:
    assert "hi" in xtts.supported_languages() and "zh" in xtts.supported_languages()
    voice = xtts.prepare_voice(references=[reference])
    with pytest.raises(LanguageUnsupported):
        xtts.synthesize(text=TEXT, language="sw", voice=voice)


def test_load_refuses_a_service_that_is_not_xtts_streaming_server() -> None:
    with (
        RunningServer(build_sovits_app(SovitsModel())) as other,
        pytest.raises(EngineUnavailable, match="not xtts-streaming-server"),
    ):
        XttsEngine(base_url=other.url).load()


def test_load_refuses_a_server_answering_errors(tmp_path) -> None:
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse

    broken = FastAPI(openapi_url=None)

    @broken.get("/openapi.json")
    def failing() -> JSONResponse:
        return JSONResponse(status_code=500, content={"detail": "Internal Server Error"})

    with RunningServer(broken) as running, pytest.raises(EngineUnavailable, match="500"):
        XttsEngine(base_url=running.url).load()


def test_one_stream_at_a_time(xtts, model, reference) -> None:
    voice = xtts.prepare_voice(references=[reference])
    model.mode, model.delay_s = "paced", 0.05
    errors: list[BaseException] = []

    def run() -> None:
        try:
            xtts.synthesize(text=TEXT * 2, language="en", voice=voice)
        except BaseException as exc:  # collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == [] and model.most_streams_at_once == 1


def test_waiting_for_a_turn_stops_when_cancelled(xtts, model, reference) -> None:
    voice = xtts.prepare_voice(references=[reference])
    model.mode, model.delay_s = "paced", 0.3
    first = threading.Thread(target=lambda: xtts.synthesize(text=TEXT * 4, language="en", voice=voice))
    first.start()
    token = CancelToken()
    threading.Timer(0.3, token.cancel).start()
    with pytest.raises(EngineCancelled):
        xtts.synthesize(text=TEXT, language="en", voice=voice, cancel=token)
    first.join(30)


def test_latents_survive_the_profile_round_trip(xtts, model, reference) -> None:
    voice = xtts.prepare_voice(references=[reference])
    assert len(voice.to_json()) < 200_000
    xtts.synthesize(text=TEXT, language="en", voice=VoiceProfile.from_json(voice.to_json()))
    assert model.requests[-1]["latent_frames"] == 32


def test_dropped_stream_is_refused(xtts, model, reference) -> None:
    voice = xtts.prepare_voice(references=[reference])
    model.mode = "drop"
    with pytest.raises(EngineRequestFailed, match="dropped"):
        xtts.synthesize(text=TEXT * 3, language="en", voice=voice)


def test_cancel_stops_reading_the_stream(xtts, model, reference) -> None:
    voice = xtts.prepare_voice(references=[reference])
    model.mode, model.delay_s = "paced", 0.2
    token = CancelToken()
    threading.Timer(0.3, token.cancel).start()
    with pytest.raises(EngineCancelled):
        xtts.synthesize(text=TEXT * 4, language="en", voice=voice, cancel=token)


def test_tampered_latents_are_refused(xtts, reference) -> None:
    voice = xtts.prepare_voice(references=[reference])
    data = json.loads(voice.to_json())
    data["parameters"]["latent_frames"] = 31
    with pytest.raises(VoiceProfileInvalid):
        xtts.synthesize(text=TEXT, language="en", voice=VoiceProfile.from_json(json.dumps(data)))


def test_html_answer_is_refused(xtts, model, reference) -> None:
    voice = xtts.prepare_voice(references=[reference])
    model.mode = "html"
    with pytest.raises(EngineRequestFailed, match="content type"):
        xtts.synthesize(text=TEXT, language="en", voice=voice)


def test_has_no_speed_control(xtts, reference) -> None:
    voice = xtts.prepare_voice(references=[reference])
    with pytest.raises(ControlUnsupported):
        xtts.synthesize(text=TEXT, language="en", voice=voice, controls=SynthesisControls(speed=1.5))


def test_profile_is_not_usable_by_another_engine(xtts, reference) -> None:
    voice = xtts.prepare_voice(references=[reference])
    other = VoiceProfile(
        engine="gpt-sovits", model_id=voice.model_id, parameters=voice.parameters, reference_sha256="0" * 64
    )
    with pytest.raises(VoiceProfileInvalid):
        xtts.synthesize(text=TEXT, language="en", voice=other)
