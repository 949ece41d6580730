"""F5-TTS and Chatterbox adapters: start-up checks, and their upstream behaviour reproduced by
stand-in packages (``tests/engine/packages``) with only the model stubbed."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from engine.adapters.chatterbox import OUTPUT_CAP as CHATTERBOX_CAP
from engine.adapters.chatterbox import ChatterboxEngine
from engine.adapters.f5 import CACHED_VOICES, F5TtsEngine
from engine.errors import ControlUnsupported, EngineOutputInvalid, EngineUnavailable, ReferenceInvalid
from engine.interface import ReferenceClip, SynthesisControls

PACKAGES = Path(__file__).resolve().parent / "packages"
TEXT = "The birch canoe slid on the smooth planks."


@pytest.fixture
def stand_in_packages(monkeypatch):
    monkeypatch.syspath_prepend(str(PACKAGES))
    yield
    for name in [m for m in list(__import__("sys").modules) if m.split(".")[0] in ("f5_tts", "chatterbox")]:
        del __import__("sys").modules[name]


@pytest.fixture(scope="module")
def speech(speech_dir) -> tuple[np.ndarray, int]:
    clips = [sf.read(speech_dir / f"en_{name}.wav", dtype="float32")[0] for name in ("robert", "ryan", "linda_johnson")]
    return np.concatenate(clips), 24000


def clip(speech, seconds: float, transcript: str | None = "What the clip says.", offset: int = 0) -> ReferenceClip:
    audio, rate = speech
    start = offset * rate // 10
    return ReferenceClip(audio[start : start + int(seconds * rate)], rate, transcript=transcript)


def f5_files(folder: Path) -> dict[str, Path]:
    (folder / "vocos").mkdir()
    for name in ("model_1250000.safetensors", "vocab.txt", "vocos/config.yaml", "vocos/pytorch_model.bin"):
        (folder / name).write_bytes(b"\0" * 16)
    return {
        "checkpoint": folder / "model_1250000.safetensors",
        "vocab_file": folder / "vocab.txt",
        "vocoder_dir": folder / "vocos",
    }


# --- start-up checks (no package needed) ---------------------------------------------------


def test_f5_without_package_fails_at_construction(tmp_path) -> None:
    with pytest.raises(EngineUnavailable, match="package f5-tts is not installed"):
        F5TtsEngine(**f5_files(tmp_path))


def test_f5_names_every_missing_path(tmp_path) -> None:
    with pytest.raises(EngineUnavailable) as error:
        F5TtsEngine(checkpoint=tmp_path / "absent.safetensors", vocab_file=None, vocoder_dir=tmp_path / "vocos")
    message = str(error.value)
    assert "absent.safetensors does not exist" in message
    assert "vocabulary file is not configured" in message
    assert "vocos/config.yaml does not exist" in message


def test_f5_vocoder_folder_without_vocos_files_fails_at_construction(tmp_path, stand_in_packages) -> None:
    files = f5_files(tmp_path)
    (files["vocoder_dir"] / "pytorch_model.bin").unlink()
    with pytest.raises(EngineUnavailable, match=r"pytorch_model\.bin does not exist"):
        F5TtsEngine(**files, device="cpu")


def test_chatterbox_without_package_fails_at_construction(tmp_path) -> None:
    with pytest.raises(EngineUnavailable, match="package chatterbox-tts is not installed"):
        ChatterboxEngine(checkpoint_dir=tmp_path)


def test_chatterbox_missing_checkpoint_folder_is_named(tmp_path) -> None:
    with pytest.raises(EngineUnavailable, match=r"checkpoint folder .*missing-dir does not exist"):
        ChatterboxEngine(checkpoint_dir=tmp_path / "missing-dir")


def test_unknown_device_is_refused() -> None:
    from engine.adapters.common import torch_device

    with pytest.raises(EngineUnavailable):
        torch_device("tpu")


# --- F5-TTS --------------------------------------------------------------------------------


@pytest.fixture
def f5(tmp_path, stand_in_packages):
    engine = F5TtsEngine(**f5_files(tmp_path), device="cpu")
    engine.load()
    yield engine
    from f5_tts.infer import utils_infer

    for path in utils_infer._ref_audio_cache.values():  # the stand-in's files, like upstream's, stay otherwise
        os.unlink(path)


def test_f5_refuses_a_long_reference_rather_than_clip_it_under_its_transcript(f5, speech) -> None:
    # Upstream would clip 15 s to 12 s and keep the whole transcript (utils_infer.py 344-346).
    with pytest.raises(ReferenceInvalid, match=r"cannot be cut without cutting its transcript|with its transcript"):
        f5.prepare_voice(references=[clip(speech, 15)])


def test_f5_conditions_on_the_whole_clip_its_transcript_describes(f5, speech) -> None:
    from f5_tts.api import CONDITIONED_ON

    voice = f5.prepare_voice(references=[clip(speech, 15, "Too long."), clip(speech, 9, "Nine seconds.")])
    audio = f5.synthesize(text=TEXT, language="en", voice=voice)
    seconds, transcript = CONDITIONED_ON[-1]
    assert abs(seconds - 9.0) < 0.01 and transcript == "Nine seconds. "
    assert audio.sample_rate == 24000 and audio.duration_s > 2.0


def test_f5_needs_a_transcript(f5, speech) -> None:
    with pytest.raises(ReferenceInvalid, match="transcript"):
        f5.prepare_voice(references=[clip(speech, 8, transcript=None)])


def test_f5_reference_cache_stays_bounded_and_its_files_are_removed(f5, speech) -> None:
    from f5_tts.infer import utils_infer

    seen: set[str] = set()
    voices = [f5.prepare_voice(references=[clip(speech, 8, offset=i)]) for i in range(CACHED_VOICES + 4)]
    for voice in voices:
        f5.synthesize(text=TEXT, language="en", voice=voice)
        seen |= set(utils_infer._ref_audio_cache.values())
    kept = set(utils_infer._ref_audio_cache.values())
    assert len(seen) == CACHED_VOICES + 4 and len(kept) == CACHED_VOICES
    assert all(os.path.isfile(path) for path in kept)
    assert not any(os.path.exists(path) for path in seen - kept)  # dropped voices' files are gone
    f5.synthesize(text=TEXT, language="en", voice=voices[-1])  # a cached voice is served again
    assert set(utils_infer._ref_audio_cache.values()) == kept


def test_f5_has_no_pitch_control(f5, speech) -> None:
    voice = f5.prepare_voice(references=[clip(speech, 8)])
    with pytest.raises(ControlUnsupported):
        f5.synthesize(text=TEXT, language="en", voice=voice, controls=SynthesisControls(pitch_semitones=1))


# --- Chatterbox ----------------------------------------------------------------------------


@pytest.fixture
def chatterbox_dir(tmp_path) -> Path:
    for name in ("ve.safetensors", "t3_cfg.safetensors", "s3gen.safetensors", "tokenizer.json"):
        (tmp_path / name).write_bytes(b"\0" * 16)
    return tmp_path


def test_chatterbox_without_perth_network_fails_at_load_with_a_clear_error(
    chatterbox_dir, stand_in_packages, monkeypatch
) -> None:
    import perth

    monkeypatch.setattr(perth, "PerthImplicitWatermarker", None)  # what a failed import leaves
    engine = ChatterboxEngine(checkpoint_dir=chatterbox_dir, device="cpu")
    with pytest.raises(EngineUnavailable, match=r"PerthImplicitWatermarker is None"):
        engine.load()


@pytest.fixture
def chatterbox(chatterbox_dir, stand_in_packages) -> ChatterboxEngine:
    engine = ChatterboxEngine(checkpoint_dir=chatterbox_dir, device="cpu")
    engine.load()
    return engine


def test_chatterbox_long_text_goes_in_whole_sentences_below_its_40_s_cap(chatterbox, speech) -> None:
    voice = chatterbox.prepare_voice(references=[clip(speech, 8)])
    text = " ".join(f"Sentence number {n} is one more short part of a long story." for n in range(20))
    chunks = list(chatterbox.synthesize_stream(text=text, language="en", voice=voice))
    assert len(chunks) >= 3
    assert all(chunk.duration_s < CHATTERBOX_CAP.max_output_s - 1 for chunk in chunks)
    joined = chatterbox.synthesize(text=text, language="en", voice=voice)
    assert joined.duration_s >= 0.07 * len(text) - 0.07 * len(chunks)  # nothing was cut off


def test_chatterbox_piece_that_reaches_the_cap_is_refused(chatterbox, speech) -> None:
    voice = chatterbox.prepare_voice(references=[clip(speech, 8)])
    with pytest.raises(EngineOutputInvalid, match="cut off"):
        chatterbox.synthesize(text="A RUNAWAY sentence.", language="en", voice=voice)


def test_chatterbox_has_no_speed_control(chatterbox, speech) -> None:
    voice = chatterbox.prepare_voice(references=[clip(speech, 8)])
    with pytest.raises(ControlUnsupported):
        chatterbox.synthesize(text=TEXT, language="en", voice=voice, controls=SynthesisControls(speed=1.2))
