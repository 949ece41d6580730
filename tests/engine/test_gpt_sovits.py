"""The GPT-SoVITS adapter against a stand-in for ``api_v2.py`` that reproduces upstream's
behaviour line by line (``servers/gpt_sovits_api_v2.py``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from engine.adapters.gpt_sovits import GptSovitsEngine
from engine.errors import (
    ControlUnsupported,
    EngineRequestFailed,
    EngineTimeout,
    EngineUnavailable,
    LanguageUnsupported,
    ReferenceInvalid,
    TextEmpty,
    VoiceProfileInvalid,
)
from engine.interface import ReferenceClip, SynthesisControls, VoiceProfile
from tests.engine.servers.gpt_sovits_api_v2 import Model, build_app
from tests.engine.servers.running import RunningServer
from tests.engine.servers.xtts_streaming_server import Model as XttsModel
from tests.engine.servers.xtts_streaming_server import build_app as build_xtts_app

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
    model.version, model.fail_inference, model.html_instead = "v2", False, False
    model.delay_s, model.drop_mid_body = 0.0, False
    model.requests.clear()


@pytest.fixture
def sovits(server, tmp_path) -> GptSovitsEngine:
    engine = GptSovitsEngine(base_url=server.url, shared_dir=tmp_path, timeout_s=2.0)
    engine.load()
    return engine


@pytest.fixture(scope="module")
def speech(speech_dir) -> tuple[np.ndarray, int]:
    """About 20 s of speech (three clips of one 24 kHz corpus), cut to the lengths a test needs."""
    clips = [sf.read(speech_dir / f"en_{name}.wav", dtype="float32")[0] for name in ("robert", "ryan", "linda_johnson")]
    return np.concatenate(clips), 24000


def clip(speech, seconds: float, transcript: str | None = "A reference transcript.") -> ReferenceClip:
    audio, rate = speech
    assert len(audio) >= seconds * rate
    return ReferenceClip(audio[: int(seconds * rate)], rate, transcript=transcript, language="en")


def test_request_carries_the_documented_fields(sovits, model, speech, tmp_path) -> None:
    voice = VoiceProfile.from_json(sovits.prepare_voice(references=[clip(speech, 8)]).to_json())
    audio = sovits.synthesize(text=TEXT, language="en", voice=voice, controls=SynthesisControls(speed=1.25))
    request = model.requests[-1]
    assert request["text"] == TEXT and request["text_lang"] == "en" and request["prompt_lang"] == "en"
    assert request["prompt_text"] == "A reference transcript." and request["media_type"] == "wav"
    assert request["speed_factor"] == 1.25 and request["streaming_mode"] is False
    staged = Path(request["ref_audio_path"])
    assert staged.parent == tmp_path and staged.suffix == ".wav"
    staged_audio, staged_rate = sf.read(staged)
    assert staged_rate == speech[1] and abs(len(staged_audio) / staged_rate - 8.0) < 0.01
    assert audio.sample_rate == 32000 and abs(audio.duration_s - 0.07 * len(TEXT) / 1.25) < 0.05


def test_inference_failure_answered_with_a_second_of_zeros_is_an_engine_failure(sovits, model, speech) -> None:
    # Upstream answers 200 + 1 s of 16 kHz zeros when inference raises (TTS.py 1515-1526).
    voice = sovits.prepare_voice(references=[clip(speech, 8)])
    model.fail_inference = True
    with pytest.raises(EngineRequestFailed, match="inference failed"):
        sovits.synthesize(text=TEXT, language="en", voice=voice)


def test_long_reference_with_transcript_is_never_trimmed_away_from_it(sovits, speech) -> None:
    # Trimming 14 s to 10 s would leave the model a transcript of words the clip no longer holds.
    with pytest.raises(ReferenceInvalid, match="cannot be cut without cutting its transcript"):
        sovits.prepare_voice(references=[clip(speech, 14)])


def test_a_fitting_clip_with_transcript_is_preferred_to_a_long_one(sovits, speech, model) -> None:
    voice = sovits.prepare_voice(references=[clip(speech, 14), clip(speech, 6, transcript="Six seconds.")])
    assert voice.parameters["prompt_text"] == "Six seconds."
    sovits.synthesize(text=TEXT, language="en", voice=voice)
    assert abs(sf.info(model.requests[-1]["ref_audio_path"]).duration - 6.0) < 0.01


def test_long_reference_without_transcript_is_trimmed_to_ten_seconds(sovits, speech, model) -> None:
    voice = sovits.prepare_voice(references=[clip(speech, 14, transcript=None)])
    assert voice.parameters["prompt_text"] == ""
    sovits.synthesize(text=TEXT, language="en", voice=voice)
    assert abs(sf.info(model.requests[-1]["ref_audio_path"]).duration - 10.0) < 0.01


@pytest.mark.parametrize("version", ["v3", "v4"])
def test_v3_and_v4_weights_need_the_reference_transcript(server, model, speech, tmp_path, version) -> None:
    model.version = version
    engine = GptSovitsEngine(base_url=server.url, shared_dir=tmp_path)
    engine.load()
    assert engine.needs_prompt_text
    with pytest.raises(ReferenceInvalid, match="with its transcript"):
        engine.prepare_voice(references=[clip(speech, 8, transcript=None)])
    voice = engine.prepare_voice(references=[clip(speech, 8)])
    assert engine.synthesize(text=TEXT, language="en", voice=voice).sample_rate == {"v3": 24000, "v4": 48000}[version]


def test_a_stored_voice_without_transcript_is_refused_by_v3_weights(server, model, speech, tmp_path) -> None:
    v2 = GptSovitsEngine(base_url=server.url, shared_dir=tmp_path)
    v2.load()
    voice = v2.prepare_voice(references=[clip(speech, 8, transcript=None)])
    model.version = "v3"
    v3 = GptSovitsEngine(base_url=server.url, shared_dir=tmp_path)
    v3.load()
    with pytest.raises(VoiceProfileInvalid, match="transcript"):
        v3.synthesize(text=TEXT, language="en", voice=voice)


def test_v1_weights_refuse_korean_as_an_unsupported_language(server, model, speech, tmp_path) -> None:
    model.version = "v1"
    engine = GptSovitsEngine(base_url=server.url, shared_dir=tmp_path)
    engine.load()
    assert engine.supported_languages() == {"zh", "en", "ja"}
    voice = engine.prepare_voice(references=[clip(speech, 8)])
    with pytest.raises(LanguageUnsupported):
        engine.synthesize(text=TEXT, language="ko", voice=voice)
    assert model.requests[-1]["text_lang"] == "clonegate-probe"  # refused before any request


def test_language_refusal_from_the_server_is_language_unsupported(server, model, speech, tmp_path) -> None:
    # Configured and loaded against v2 weights; the server then switched to v1 weights.
    engine = GptSovitsEngine(base_url=server.url, shared_dir=tmp_path)
    engine.load()
    voice = engine.prepare_voice(references=[clip(speech, 8)])
    model.version = "v1"
    with pytest.raises(LanguageUnsupported, match="not supported in version v1"):
        engine.synthesize(text="안녕하세요, 반갑습니다.", language="ko", voice=voice)


def test_load_reads_the_weights_version_and_refuses_a_mismatch(server, model, tmp_path) -> None:
    model.version = "v4"
    engine = GptSovitsEngine(base_url=server.url, shared_dir=tmp_path)
    engine.load()
    assert "v4" in engine.describe().version
    with pytest.raises(EngineUnavailable, match="configured for v2"):
        GptSovitsEngine(base_url=server.url, shared_dir=tmp_path, model_version="v2").load()


def test_load_refuses_a_service_that_is_not_api_v2(tmp_path) -> None:
    with (
        RunningServer(build_xtts_app(XttsModel())) as other,
        pytest.raises(EngineUnavailable, match="not a GPT-SoVITS api_v2 server"),
    ):
        GptSovitsEngine(base_url=other.url, shared_dir=tmp_path).load()


def test_bare_get_tts_answers_500_upstream_so_load_does_not_use_it(server) -> None:
    import httpx

    assert httpx.get(f"{server.url}/tts").status_code == 500  # api_v2.py 484: None.lower()


def test_restages_a_reference_removed_from_the_shared_folder(sovits, model, speech, tmp_path) -> None:
    voice = sovits.prepare_voice(references=[clip(speech, 8)])
    for staged in tmp_path.glob("*.wav"):
        staged.unlink()
    sovits.synthesize(text=TEXT, language="en", voice=voice)
    assert Path(model.requests[-1]["ref_audio_path"]).is_file()


def test_engine_side_path_differs_from_local_path(server, model, speech, tmp_path) -> None:
    engine = GptSovitsEngine(base_url=server.url, shared_dir=tmp_path, engine_shared_dir="/mnt/engine-refs")
    engine.load()
    voice = engine.prepare_voice(references=[clip(speech, 8)])
    with pytest.raises(EngineRequestFailed, match="not exists"):  # the stand-in cannot see /mnt
        engine.synthesize(text=TEXT, language="en", voice=voice)
    assert model.requests[-1]["ref_audio_path"].startswith("/mnt/engine-refs/")


def test_slow_answer_times_out(sovits, model, speech) -> None:
    voice = sovits.prepare_voice(references=[clip(speech, 8)])
    model.delay_s = 3.0
    with pytest.raises(EngineTimeout):
        sovits.synthesize(text=TEXT, language="en", voice=voice)


def test_dropped_answer_is_refused(sovits, model, speech) -> None:
    voice = sovits.prepare_voice(references=[clip(speech, 8)])
    model.drop_mid_body = True
    with pytest.raises(EngineRequestFailed):
        sovits.synthesize(text=TEXT, language="en", voice=voice)


def test_html_instead_of_audio_is_refused(sovits, model, speech) -> None:
    voice = sovits.prepare_voice(references=[clip(speech, 8)])
    model.html_instead = True
    with pytest.raises(EngineRequestFailed, match="content type"):
        sovits.synthesize(text=TEXT, language="en", voice=voice)


def test_refuses_bad_input_before_calling(sovits, model, speech) -> None:
    voice = sovits.prepare_voice(references=[clip(speech, 8)])
    model.requests.clear()
    with pytest.raises(LanguageUnsupported):
        sovits.synthesize(text=TEXT, language="de", voice=voice)
    with pytest.raises(TextEmpty):
        sovits.synthesize(text=" ", language="en", voice=voice)
    with pytest.raises(ControlUnsupported):
        sovits.synthesize(text=TEXT, language="en", voice=voice, controls=SynthesisControls(pitch_semitones=2))
    with pytest.raises(ReferenceInvalid):
        sovits.prepare_voice(references=[clip(speech, 2)])
    assert model.requests == []


def test_missing_shared_folder_fails_at_start(server, tmp_path) -> None:
    with pytest.raises(EngineUnavailable, match="shared reference folder"):
        GptSovitsEngine(base_url=server.url, shared_dir=tmp_path / "absent")


def test_unreachable_engine_is_unavailable(tmp_path) -> None:
    engine = GptSovitsEngine(base_url="http://127.0.0.1:9", shared_dir=tmp_path)
    with pytest.raises(EngineUnavailable):
        engine.load()
