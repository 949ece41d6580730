"""The Zonos adapter against a real Gradio 5.15.0 server shaped like Zonos's app.

The upload route, the ``/call`` event stream, error events and the file route are Gradio's own
(see ``servers/zonos_gradio_app.py``); only the model is stubbed.
"""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from engine.adapters.zonos import OUTPUT_CAP, ZonosEngine
from engine.errors import (
    ControlUnsupported,
    EngineCancelled,
    EngineOutputInvalid,
    EngineRequestFailed,
    EngineUnavailable,
    LanguageUnsupported,
)
from engine.interface import CancelToken, EngineAudio, ReferenceClip, SynthesisControls
from tests.engine.servers.gradio_server import ZonosGradioServer
from tests.engine.servers.running import RunningServer
from tests.engine.servers.xtts_streaming_server import Model as XttsModel
from tests.engine.servers.xtts_streaming_server import build_app as build_xtts_app

TEXT = "The birch canoe slid on the smooth planks."


@pytest.fixture(scope="module")
def gradio(tmp_path_factory):
    server = ZonosGradioServer(tmp_path_factory.mktemp("zonos-gradio"))
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def zonos(gradio) -> ZonosEngine:
    engine = ZonosEngine(base_url=gradio.url, timeout_s=30.0)
    engine.load()
    return engine


@pytest.fixture(scope="module")
def voice(zonos, speech_dir):
    audio, rate = sf.read(speech_dir / "en_robert.wav", dtype="float32")
    return zonos.prepare_voice(references=[ReferenceClip(audio, rate)])


def test_zonos_reads_gradios_octet_stream_file(zonos, voice, gradio) -> None:
    # Gradio 5.x serves the output .wav as application/octet-stream with "attachment".
    audio = zonos.synthesize(text=TEXT, language="en", voice=voice, controls=SynthesisControls(speed=1.5))
    call = gradio.calls()[-1]
    assert call["text"] == TEXT and call["language"] == "en-us" and call["speaking_rate"] == 22.5
    assert call["model_choice"] == "Zyphra/Zonos-v0.1-transformer" and call["randomize_seed"] is False
    assert call["seed"] == 420 and call["unconditional_keys"] == ["emotion"] and call["prefix_audio"] is None
    assert call["speaker_audio"].endswith("reference.wav")  # the uploaded reference, by Gradio's path
    assert audio.sample_rate == 44100 and abs(audio.duration_s - 0.07 * len(TEXT) / 1.5) < 0.05


def test_zonos_error_event_without_data_is_an_engine_failure(zonos, voice) -> None:
    # A model exception reaches the client as "event: error" with "data: null" after a 200.
    with pytest.raises(EngineRequestFailed, match="without a message"):
        zonos.synthesize(text="CRASH in the model.", language="en", voice=voice)


def test_zonos_gradio_error_is_an_engine_failure(zonos, voice) -> None:
    with pytest.raises(EngineRequestFailed, match="zonos generation failed"):
        zonos.synthesize(text="RAISE_GRADIO_ERROR here.", language="en", voice=voice)


def test_zonos_long_text_is_sent_in_whole_sentences_below_the_cap(zonos, voice, gradio) -> None:
    # 14 sentences, about 42 s of speech at the stand-in's rate: one call would stop at 30 s.
    sentences = [f"Sentence number {word} tells a short part of the story." for word in "abcdefghijklmn"]
    before = len(gradio.calls())
    audio = zonos.synthesize(text=" ".join(sentences), language="en", voice=voice)
    pieces = [call["text"] for call in gradio.calls()[before:]]
    assert len(pieces) >= 3 and " ".join(pieces) == " ".join(sentences)
    assert all(piece.endswith(".") and len(piece) <= OUTPUT_CAP.piece_chars for piece in pieces)
    spoken = 0.07 * sum(len(piece) for piece in pieces)
    assert audio.duration_s >= spoken  # nothing was cut off (plus the pauses between pieces)


def test_zonos_piece_that_reaches_the_cap_is_refused(zonos, voice) -> None:
    # The model misses its end token and generates until the app's 30 s cap stops it.
    with pytest.raises(EngineOutputInvalid, match="cut off"):
        zonos.synthesize(text="A RUNAWAY sentence.", language="en", voice=voice)


def test_cap_refuses_audio_at_the_cap_and_passes_shorter() -> None:
    at_cap = EngineAudio(samples=np.full(int(29.5 * 100), 0.1, dtype=np.float32), sample_rate=100)
    with pytest.raises(EngineOutputInvalid):
        OUTPUT_CAP.check(at_cap)
    below = EngineAudio(samples=np.full(20 * 100, 0.1, dtype=np.float32), sample_rate=100)
    assert OUTPUT_CAP.check(below) is below


def test_zonos_languages_come_from_the_apps_dropdown(zonos, voice) -> None:
    assert "en" in zonos.supported_languages() and "zh" in zonos.supported_languages()
    assert "hu" not in zonos.supported_languages()  # not among the stand-in app's choices
    with pytest.raises(LanguageUnsupported):
        zonos.synthesize(text=TEXT, language="hu", voice=voice)


def test_zonos_load_refuses_a_model_the_app_does_not_offer(gradio) -> None:
    with pytest.raises(EngineUnavailable, match="does not offer model"):
        ZonosEngine(base_url=gradio.url, model_choice="Zyphra/Zonos-v9").load()


def test_zonos_load_refuses_a_server_that_is_not_the_zonos_app() -> None:
    with RunningServer(build_xtts_app(XttsModel())) as other, pytest.raises(EngineUnavailable):
        ZonosEngine(base_url=other.url).load()


def test_zonos_cancel_between_pieces(zonos, voice) -> None:
    token = CancelToken()
    chunks = zonos.synthesize_stream(text="First sentence here. " * 20, language="en", voice=voice, cancel=token)
    first = next(chunks)
    assert first.duration_s > 1.0
    token.cancel("client went away")
    with pytest.raises(EngineCancelled):
        next(chunks)


def test_zonos_never_follows_the_result_url_to_another_host(zonos, voice) -> None:
    # Gradio's result "url" names a host of its own choosing; the adapter fetches by path from
    # the configured server (the stand-in's url is even malformed: ".../gradio_a/gradio_api/...").
    assert zonos.synthesize(text=TEXT, language="en", voice=voice).duration_s > 1.0


def test_zonos_has_no_pitch_shift(zonos, voice) -> None:
    with pytest.raises(ControlUnsupported):
        zonos.synthesize(text=TEXT, language="en", voice=voice, controls=SynthesisControls(pitch_semitones=-3))
