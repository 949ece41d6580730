"""The AudioSeal layer's loading path, on small checkpoints built in AudioSeal's published format.

The real AudioSeal weights cannot be had here, so these checkpoints come from AudioSeal's own
model classes (a narrower SEANet), saved the way the published files name their tensors, and
go through exactly the loader the gateway uses.
"""

from __future__ import annotations

import hashlib
import io
import pickle

import numpy as np
import pytest
import torch

from watermark import AudioSealFiles, Detection, WatermarkConfig, WatermarkModelError, build_stack
from watermark.audioseal_layer import AudioSealScheme, _model_config

SMALL = {"n_filters": 4, "dimension": 16, "lstm": 1}


def _published_names(state: dict) -> dict:
    """AudioSeal's checkpoints predate its torchscript refactor: no ``inner_conv`` level in the names."""
    return {key.replace(".inner_conv.", "."): value for key, value in state.items()}


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    from audioseal.builder import AudioSealDetectorConfig, AudioSealWMConfig, create_detector, create_generator

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("audioseal")
    generator = create_generator(_model_config("audioseal_wm_16bits", AudioSealWMConfig, SMALL))
    detector = create_detector(_model_config("audioseal_detector_16bits", AudioSealDetectorConfig, SMALL))
    torch.save({"model": _published_names(generator.state_dict())}, folder / "generator.pth")
    torch.save({"model": _published_names(detector.state_dict())}, folder / "detector.pth")
    return folder


def _files(folder, **overrides) -> AudioSealFiles:
    values = {
        "generator_path": folder / "generator.pth",
        "generator_sha256": _sha(folder / "generator.pth"),
        "detector_path": folder / "detector.pth",
        "detector_sha256": _sha(folder / "detector.pth"),
        "architecture": SMALL,
    }
    values.update(overrides)
    return AudioSealFiles(**values)


def test_loads_pinned_checkpoints_and_runs(checkpoints, english_speech):
    scheme = AudioSealScheme(_files(checkpoints))
    x, sr = english_speech[0]
    y = scheme.embed(x, sample_rate=sr)
    assert y.shape == x.shape and np.all(np.isfinite(y))
    found = scheme.detect(y, sample_rate=sr)
    assert isinstance(found, Detection) and found.scheme == "audioseal"
    assert 0.0 <= found.score <= 1.0
    assert len(found.payload) == 2 and not found.payload_verified  # 16-bit public message
    assert found.segments[0].end_s == pytest.approx(0.5)


def test_rejects_checkpoint_with_wrong_sha256(checkpoints):
    with pytest.raises(WatermarkModelError, match="sha256"):
        AudioSealScheme(_files(checkpoints, generator_sha256="0" * 64))


def test_rejects_swapped_checkpoint_file(checkpoints, tmp_path):
    """An attacker replaces the file after it was pinned: the pin no longer matches."""
    swapped = tmp_path / "generator.pth"
    swapped.write_bytes((checkpoints / "generator.pth").read_bytes() + b"\0")
    with pytest.raises(WatermarkModelError, match="sha256"):
        AudioSealScheme(_files(checkpoints, generator_path=swapped))


def test_rejects_unpinned_checkpoint(checkpoints):
    with pytest.raises(WatermarkModelError, match="no valid sha256"):
        AudioSealScheme(_files(checkpoints, detector_sha256=""))


class _RunsCodeOnLoad:
    def __reduce__(self):
        return (print, ("pickle payload executed",))


def test_rejects_pickle_code_execution_even_when_pinned(checkpoints, tmp_path):
    """A pinned but malicious pickle is still refused: the loader unpickles with weights_only=True."""
    evil = tmp_path / "evil.pth"
    buffer = io.BytesIO()
    pickle.dump({"model": _RunsCodeOnLoad()}, buffer)
    evil.write_bytes(buffer.getvalue())
    with pytest.raises(WatermarkModelError, match="weights-only"):
        AudioSealScheme(_files(checkpoints, generator_path=evil, generator_sha256=_sha(evil)))


def test_rejects_checkpoint_of_another_architecture(checkpoints):
    with pytest.raises(WatermarkModelError, match="does not fit"):
        AudioSealScheme(_files(checkpoints, architecture={"n_filters": 8, "dimension": 16, "lstm": 1}))


def test_missing_checkpoint_stops_stack_start_up(tmp_path):
    files = AudioSealFiles(tmp_path / "none.pth", "a" * 64, tmp_path / "none2.pth", "b" * 64)
    with pytest.raises(WatermarkModelError, match=r"audioseal.*failed to load"):
        build_stack(WatermarkConfig(schemes=("keyed", "audioseal"), dev_mode=True, audioseal=files))
