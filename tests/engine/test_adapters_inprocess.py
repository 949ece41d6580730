"""F5-TTS and Chatterbox adapters fail at start-up, with every missing piece named.

The packages are optional extras and are not installed here, so these tests exercise the
start-up checks a misconfigured deployment hits; nothing is downloaded either way.
"""

from __future__ import annotations

import importlib.util

import pytest

from engine.adapters.inprocess import ChatterboxEngine, F5TtsEngine
from engine.errors import EngineUnavailable

F5_INSTALLED = importlib.util.find_spec("f5_tts") is not None
CHATTERBOX_INSTALLED = importlib.util.find_spec("chatterbox") is not None


@pytest.mark.skipif(F5_INSTALLED, reason="f5-tts is installed here")
def test_f5_without_package_fails_at_construction(tmp_path) -> None:
    checkpoint = tmp_path / "model_1250000.safetensors"
    checkpoint.write_bytes(b"\0" * 16)
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("a\nb\n")
    with pytest.raises(EngineUnavailable, match="package f5-tts is not installed"):
        F5TtsEngine(checkpoint=checkpoint, vocab_file=vocab, vocoder_dir=tmp_path)


def test_f5_names_every_missing_path(tmp_path) -> None:
    with pytest.raises(EngineUnavailable) as error:
        F5TtsEngine(checkpoint=tmp_path / "absent.safetensors", vocab_file=None, vocoder_dir=tmp_path / "vocos")
    message = str(error.value)
    assert "absent.safetensors does not exist" in message
    assert "vocabulary file is not configured" in message
    assert "vocos does not exist" in message


@pytest.mark.skipif(CHATTERBOX_INSTALLED, reason="chatterbox-tts is installed here")
def test_chatterbox_without_package_fails_at_construction(tmp_path) -> None:
    with pytest.raises(EngineUnavailable, match="package chatterbox-tts is not installed"):
        ChatterboxEngine(checkpoint_dir=tmp_path)


def test_chatterbox_missing_checkpoint_folder_is_named(tmp_path) -> None:
    with pytest.raises(EngineUnavailable, match="checkpoint folder .*missing-dir does not exist"):
        ChatterboxEngine(checkpoint_dir=tmp_path / "missing-dir")


def test_unknown_device_is_refused(tmp_path) -> None:
    with pytest.raises(EngineUnavailable):
        from engine.adapters.common import torch_device

        torch_device("tpu")
