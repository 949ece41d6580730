"""Bad input is refused with a specific error before an engine runs; bad output after."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from engine.checks import check_language, check_output, check_reference, check_references, check_text
from engine.errors import (
    ControlOutOfRange,
    EngineOutputInvalid,
    LanguageUnsupported,
    ReferenceInvalid,
    TextEmpty,
    TextTooLong,
    VoiceProfileInvalid,
)
from engine.interface import EngineAudio, ReferenceClip, SynthesisControls, VoiceProfile


@pytest.fixture(scope="module")
def speech(speech_dir) -> tuple[np.ndarray, int]:
    audio, rate = sf.read(speech_dir / "en_ryan.wav", dtype="float32")
    return audio, rate


@pytest.mark.parametrize("text", ["", "   ", "\n\t", "...!?", None, 42])
def test_empty_text_is_refused(text: object) -> None:
    with pytest.raises(TextEmpty):
        check_text(text)


def test_ten_thousand_character_text_is_refused() -> None:
    with pytest.raises(TextTooLong):
        check_text("word " * 2000)


def test_control_characters_are_not_passed_to_engines() -> None:
    assert check_text("hello\x00\x1b[31m world\u200b") == "hello [31m world"


@pytest.mark.parametrize("language", ["de", "fr", "xx", "", None, "english"])
def test_unsupported_language_is_refused(language: object) -> None:
    with pytest.raises(LanguageUnsupported):
        check_language(language, supported={"en"})


@pytest.mark.parametrize("language", ["en", "EN", "en-US", "en_GB"])
def test_language_codes_are_normalised(language: str) -> None:
    assert check_language(language, supported={"en"}) == "en"


def test_real_reference_is_accepted(speech) -> None:
    audio, rate = speech
    assert check_reference(ReferenceClip(audio, rate)).shape == audio.shape


def test_silent_reference_is_refused() -> None:
    with pytest.raises(ReferenceInvalid, match="silent"):
        check_reference(ReferenceClip(np.zeros(24000 * 3, dtype=np.float32), 24000))


def test_near_silent_noise_reference_is_refused() -> None:
    noise = np.random.default_rng(0).normal(0, 2e-4, 24000 * 3).astype(np.float32)
    with pytest.raises(ReferenceInvalid):
        check_reference(ReferenceClip(noise, 24000))


def test_short_reference_is_refused(speech) -> None:
    audio, rate = speech
    with pytest.raises(ReferenceInvalid, match="at least"):
        check_reference(ReferenceClip(audio[: int(0.2 * rate)], rate))


def test_click_is_not_enough_voice(speech) -> None:
    audio = np.zeros(24000 * 2, dtype=np.float32)
    audio[1000:1480] = speech[0][20000:20480]  # 20 ms of sound in 2 s
    with pytest.raises(ReferenceInvalid, match="of sound"):
        check_reference(ReferenceClip(audio, 24000))


def test_stereo_reference_is_refused(speech) -> None:
    audio, rate = speech
    with pytest.raises(ReferenceInvalid, match="mono"):
        check_reference(ReferenceClip(np.stack([audio, audio], axis=1), rate))


def test_nan_reference_is_refused(speech) -> None:
    audio, rate = speech
    broken = audio.copy()
    broken[500] = np.nan
    with pytest.raises(ReferenceInvalid, match="NaN"):
        check_reference(ReferenceClip(broken, rate))


@pytest.mark.parametrize("rate", [1000, 23999, 96000, 0, -24000])
def test_wrong_sample_rate_is_refused(speech, rate: int) -> None:
    with pytest.raises(ReferenceInvalid, match="sample rate"):
        check_reference(ReferenceClip(speech[0], rate))


def test_huge_reference_is_refused(speech) -> None:
    audio, rate = speech
    with pytest.raises(ReferenceInvalid, match="at most"):
        check_reference(ReferenceClip(np.tile(audio, 20), rate))


def test_integer_pcm_reference_is_refused(speech) -> None:
    audio, rate = speech
    with pytest.raises(ReferenceInvalid, match="float"):
        check_reference(ReferenceClip((audio * 32767).astype(np.int16), rate))


def test_no_references_is_refused() -> None:
    with pytest.raises(ReferenceInvalid):
        check_references([])


@pytest.mark.parametrize(
    "controls",
    [
        {"speed": 0.1},
        {"speed": 3.0},
        {"pitch_semitones": 24},
        {"speed": float("nan")},
        {"pitch_semitones": float("inf")},
    ],
)
def test_controls_out_of_range_are_refused(controls: dict) -> None:
    with pytest.raises(ControlOutOfRange):
        SynthesisControls(**controls)


def _speech_like(seconds: float, rate: int = 22050) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * 150 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)


def test_plausible_output_passes() -> None:
    audio = EngineAudio(samples=_speech_like(3.0), sample_rate=22050)
    assert check_output(audio, spoken_chars=45) is audio


def test_nan_output_is_refused() -> None:
    samples = _speech_like(3.0)
    samples[100] = np.nan
    with pytest.raises(EngineOutputInvalid, match="NaN"):
        check_output(EngineAudio(samples=samples, sample_rate=22050), spoken_chars=45)


def test_silent_output_is_refused() -> None:
    with pytest.raises(EngineOutputInvalid, match="silence"):
        check_output(EngineAudio(samples=np.zeros(22050 * 3), sample_rate=22050), spoken_chars=45)


def test_truncated_output_is_refused() -> None:
    with pytest.raises(EngineOutputInvalid, match="expected"):
        check_output(EngineAudio(samples=_speech_like(0.5), sample_rate=22050), spoken_chars=400)


def test_runaway_output_is_refused() -> None:
    with pytest.raises(EngineOutputInvalid, match="expected"):
        check_output(EngineAudio(samples=_speech_like(30.0), sample_rate=22050), spoken_chars=20)


def test_mostly_silent_output_is_refused() -> None:
    samples = np.zeros(22050 * 4, dtype=np.float32)
    samples[:1984] = _speech_like(0.09) * 3
    with pytest.raises(EngineOutputInvalid):
        check_output(EngineAudio(samples=samples, sample_rate=22050), spoken_chars=50)


def test_engine_audio_is_read_only() -> None:
    audio = EngineAudio(samples=_speech_like(1.0), sample_rate=22050)
    with pytest.raises(ValueError):
        audio.samples[0] = 1.0
    assert not any(hasattr(audio, name) for name in ("tobytes", "to_bytes", "to_json", "encode", "wav"))


def test_profile_round_trip() -> None:
    profile = VoiceProfile(
        engine="e",
        model_id="m",
        parameters={"warp": 1.1, "list": [1, 2]},
        reference_sha256="ab" * 32,
        metrics={"best_similarity": 0.8},
    )
    assert VoiceProfile.from_json(profile.to_json()) == profile


@pytest.mark.parametrize(
    "stored",
    [
        "not json",
        "[]",
        '{"engine": "e"}',
        '{"engine": "e", "model_id": "m", "format_version": 99, "reference_sha256": "x",'
        ' "parameters": {}, "metrics": {}}',
        '{"engine": 1, "model_id": "m", "format_version": 1, "reference_sha256": "x", "parameters": {}, "metrics": {}}',
    ],
)
def test_malformed_stored_profile_is_refused(stored: str) -> None:
    with pytest.raises(VoiceProfileInvalid):
        VoiceProfile.from_json(stored)
