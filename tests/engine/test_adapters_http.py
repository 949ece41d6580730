"""Contract tests of the HTTP adapters against local servers that follow the engines' APIs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from engine.adapters.gpt_sovits import GptSovitsEngine
from engine.adapters.xtts import XttsEngine
from engine.adapters.zonos import ZonosEngine
from engine.errors import (
    ControlUnsupported,
    EngineCancelled,
    EngineRequestFailed,
    EngineTimeout,
    EngineUnavailable,
    LanguageUnsupported,
    ReferenceInvalid,
    TextEmpty,
    VoiceProfileInvalid,
)
from engine.interface import CancelToken, ReferenceClip, SynthesisControls, VoiceProfile
from tests.engine.fake_engine_servers import FakeEngineServer

TEXT = "The birch canoe slid on the smooth planks."


@pytest.fixture(scope="module")
def server():
    with FakeEngineServer() as running:
        yield running


@pytest.fixture(autouse=True)
def fresh(server):
    server.reset()


@pytest.fixture(scope="module")
def reference(speech_dir) -> ReferenceClip:
    audio, rate = sf.read(speech_dir / "en_robert.wav", dtype="float32")
    return ReferenceClip(audio, rate, transcript="A reference transcript.", language="en")


# --- GPT-SoVITS ----------------------------------------------------------------------------


@pytest.fixture
def sovits(server, tmp_path) -> GptSovitsEngine:
    return GptSovitsEngine(base_url=server.url, shared_dir=tmp_path, timeout_s=2.0)


def test_sovits_request_carries_the_documented_fields(sovits, server, reference, tmp_path) -> None:
    voice = VoiceProfile.from_json(sovits.prepare_voice(references=[reference]).to_json())
    audio = sovits.synthesize(text=TEXT, language="en", voice=voice, controls=SynthesisControls(speed=1.25))
    request = server.behaviour.requests[-1]
    assert request["text"] == TEXT and request["text_lang"] == "en" and request["prompt_lang"] == "en"
    assert request["prompt_text"] == "A reference transcript." and request["media_type"] == "wav"
    assert request["speed_factor"] == 1.25 and request["streaming_mode"] is False
    staged = Path(request["ref_audio_path"])
    assert staged.parent == tmp_path and staged.suffix == ".wav"
    staged_audio, staged_rate = sf.read(staged)
    assert staged_rate == reference.sample_rate and 3.0 <= len(staged_audio) / staged_rate <= 10.0
    assert audio.sample_rate == 32000 and abs(audio.duration_s - 0.07 * len(TEXT) / 1.25) < 0.05


def test_sovits_restages_a_reference_removed_from_the_shared_folder(sovits, server, reference, tmp_path) -> None:
    voice = sovits.prepare_voice(references=[reference])
    for staged in tmp_path.glob("*.wav"):
        staged.unlink()
    sovits.synthesize(text=TEXT, language="en", voice=voice)
    assert Path(server.behaviour.requests[-1]["ref_audio_path"]).is_file()


def test_sovits_engine_side_path_differs_from_local_path(server, reference, tmp_path) -> None:
    engine = GptSovitsEngine(base_url=server.url, shared_dir=tmp_path, engine_shared_dir="/mnt/engine-refs")
    voice = engine.prepare_voice(references=[reference])
    with pytest.raises(EngineRequestFailed, match="not found"):  # the fake server cannot see /mnt
        engine.synthesize(text=TEXT, language="en", voice=voice)
    assert server.behaviour.requests[-1]["ref_audio_path"].startswith("/mnt/engine-refs/")


def test_sovits_error_answer_becomes_request_failed(sovits, server, reference) -> None:
    voice = sovits.prepare_voice(references=[reference])
    server.reset("error")
    with pytest.raises(EngineRequestFailed, match="CUDA out of memory"):
        sovits.synthesize(text=TEXT, language="en", voice=voice)


def test_sovits_slow_answer_times_out(sovits, server, reference) -> None:
    voice = sovits.prepare_voice(references=[reference])
    server.reset("slow", delay_s=3.0)
    with pytest.raises(EngineTimeout):
        sovits.synthesize(text=TEXT, language="en", voice=voice)


def test_sovits_dropped_answer_is_refused(sovits, server, reference) -> None:
    voice = sovits.prepare_voice(references=[reference])
    server.reset("drop")
    with pytest.raises(EngineRequestFailed):
        sovits.synthesize(text=TEXT, language="en", voice=voice)


def test_sovits_html_instead_of_audio_is_refused(sovits, server, reference) -> None:
    voice = sovits.prepare_voice(references=[reference])
    server.reset("html")
    with pytest.raises(EngineRequestFailed, match="content type"):
        sovits.synthesize(text=TEXT, language="en", voice=voice)


def test_sovits_refuses_bad_input_before_calling(sovits, server, reference) -> None:
    voice = sovits.prepare_voice(references=[reference])
    with pytest.raises(LanguageUnsupported):
        sovits.synthesize(text=TEXT, language="de", voice=voice)
    with pytest.raises(TextEmpty):
        sovits.synthesize(text=" ", language="en", voice=voice)
    with pytest.raises(ControlUnsupported):
        sovits.synthesize(text=TEXT, language="en", voice=voice, controls=SynthesisControls(pitch_semitones=2))
    with pytest.raises(ReferenceInvalid):
        sovits.prepare_voice(
            references=[ReferenceClip(reference.audio[: 2 * reference.sample_rate], reference.sample_rate)]
        )
    assert server.behaviour.requests == []


def test_sovits_missing_shared_folder_fails_at_start(server, tmp_path) -> None:
    with pytest.raises(EngineUnavailable, match="shared reference folder"):
        GptSovitsEngine(base_url=server.url, shared_dir=tmp_path / "absent")


def test_unreachable_engine_is_unavailable(tmp_path) -> None:
    engine = GptSovitsEngine(base_url="http://127.0.0.1:9", shared_dir=tmp_path)
    with pytest.raises(EngineUnavailable):
        engine.load()


# --- XTTS ----------------------------------------------------------------------------------


@pytest.fixture
def xtts(server) -> XttsEngine:
    return XttsEngine(base_url=server.url, timeout_s=2.0)


def test_xtts_clone_then_stream(xtts, server, reference) -> None:
    voice = xtts.prepare_voice(references=[reference])
    clone = server.behaviour.requests[-1]
    assert clone["path"] == "/clone_speaker" and clone["content_type"] == "audio/wav"
    stored = VoiceProfile.from_json(voice.to_json())
    audio = xtts.synthesize(text=TEXT, language="de", voice=stored)
    request = server.behaviour.requests[-1]
    assert request == {"path": "/tts_stream", "text": TEXT, "language": "de", "latent_frames": 32, "embedding_dim": 512}
    assert audio.sample_rate == 24000 and abs(audio.duration_s - 0.07 * len(TEXT)) < 0.01
    assert np.max(np.abs(audio.samples)) > 0.2  # PCM after the zero-length header was decoded


def test_xtts_latents_survive_the_profile_round_trip(xtts, server, reference) -> None:
    voice = xtts.prepare_voice(references=[reference])
    assert len(voice.to_json()) < 200_000
    xtts.synthesize(text=TEXT, language="en", voice=VoiceProfile.from_json(voice.to_json()))
    assert server.behaviour.requests[-1]["latent_frames"] == 32


def test_xtts_dropped_stream_is_refused(xtts, server, reference) -> None:
    voice = xtts.prepare_voice(references=[reference])
    server.reset("drop")
    with pytest.raises(EngineRequestFailed, match="dropped"):
        xtts.synthesize(text=TEXT * 3, language="en", voice=voice)


def test_xtts_cancel_stops_reading_the_stream(xtts, server, reference) -> None:
    voice = xtts.prepare_voice(references=[reference])
    server.reset("paced", delay_s=0.2)
    token = CancelToken()
    import threading

    threading.Timer(0.3, token.cancel).start()
    with pytest.raises(EngineCancelled):
        xtts.synthesize(text=TEXT * 4, language="en", voice=voice, cancel=token)


def test_xtts_tampered_latents_are_refused(xtts, reference) -> None:
    voice = xtts.prepare_voice(references=[reference])
    data = json.loads(voice.to_json())
    data["parameters"]["latent_frames"] = 31
    with pytest.raises(VoiceProfileInvalid):
        xtts.synthesize(text=TEXT, language="en", voice=VoiceProfile.from_json(json.dumps(data)))


def test_xtts_has_no_speed_control(xtts, reference) -> None:
    voice = xtts.prepare_voice(references=[reference])
    with pytest.raises(ControlUnsupported):
        xtts.synthesize(text=TEXT, language="en", voice=voice, controls=SynthesisControls(speed=1.5))


def test_xtts_unsupported_language_is_refused(xtts, reference) -> None:
    voice = xtts.prepare_voice(references=[reference])
    with pytest.raises(LanguageUnsupported):
        xtts.synthesize(text=TEXT, language="sw", voice=voice)


def test_xtts_profile_is_not_usable_by_another_engine(xtts, sovits, reference) -> None:
    voice = xtts.prepare_voice(references=[reference])
    with pytest.raises(VoiceProfileInvalid):
        sovits.synthesize(text=TEXT, language="en", voice=voice)


# --- Zonos (Gradio) ------------------------------------------------------------------------


@pytest.fixture
def zonos(server) -> ZonosEngine:
    return ZonosEngine(base_url=server.url, timeout_s=2.0)


def test_zonos_upload_call_and_fetch(zonos, server, reference) -> None:
    zonos.load()
    voice = zonos.prepare_voice(references=[reference])
    audio = zonos.synthesize(text=TEXT, language="en", voice=voice, controls=SynthesisControls(speed=1.5))
    call = next(r for r in server.behaviour.requests if r["path"] == "/gradio_api/call/generate_audio")
    data = call["data"]
    assert data[0] == "Zyphra/Zonos-v0.1-transformer" and data[1] == TEXT and data[2] == "en-us"
    assert data[3]["meta"] == {"_type": "gradio.FileData"} and data[16] == 22.5
    assert data[27] is False and data[28] == ["emotion"]
    assert audio.sample_rate == 44100 and abs(audio.duration_s - 0.07 * len(TEXT) / 1.5) < 0.05


def test_zonos_never_follows_the_result_url_to_another_host(zonos, server, reference) -> None:
    # The fake puts attacker.invalid in "url"; the adapter fetches by path from the configured host.
    voice = zonos.prepare_voice(references=[reference])
    assert zonos.synthesize(text=TEXT, language="en", voice=voice).duration_s > 1.0


def test_zonos_error_event_becomes_request_failed(zonos, server, reference) -> None:
    voice = zonos.prepare_voice(references=[reference])
    server.reset("error")
    with pytest.raises(EngineRequestFailed, match="CUDA out of memory"):
        zonos.synthesize(text=TEXT, language="en", voice=voice)


def test_zonos_slow_result_times_out(zonos, server, reference) -> None:
    voice = zonos.prepare_voice(references=[reference])
    server.reset("slow", delay_s=3.0)
    with pytest.raises(EngineTimeout):
        zonos.synthesize(text=TEXT, language="en", voice=voice)


def test_zonos_html_result_is_refused(zonos, server, reference) -> None:
    voice = zonos.prepare_voice(references=[reference])
    server.reset("html")
    with pytest.raises(EngineRequestFailed, match="content type"):
        zonos.synthesize(text=TEXT, language="en", voice=voice)


def test_zonos_has_no_pitch_shift(zonos, reference) -> None:
    voice = zonos.prepare_voice(references=[reference])
    with pytest.raises(ControlUnsupported):
        zonos.synthesize(text=TEXT, language="en", voice=voice, controls=SynthesisControls(pitch_semitones=-3))
