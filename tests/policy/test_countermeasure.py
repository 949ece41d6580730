"""The ONNX countermeasure path on small models in AASIST's export format
(tests/policy/countermeasure_models.py): what is under test is the path around a real model
(pinning, format checks, windows, resampling, threshold, the refusal), not a detector.
"""

from __future__ import annotations

import numpy as np
import pytest

from policy.consent.countermeasure import WINDOW_SAMPLES, CountermeasureSpec, OnnxCountermeasure, windows
from policy.errors import ConsentRecordingSynthetic, SpeakerModelError, SpeakerModelHashMismatch
from tests.policy.countermeasure_models import build_model


def tone(seconds: float, *, amplitude: float, rate: int = 16_000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * 150 * t)).astype(np.float32)


@pytest.fixture
def model(tmp_path) -> OnnxCountermeasure:
    path = tmp_path / "aasist.onnx"
    return OnnxCountermeasure(CountermeasureSpec(path=path, sha256=build_model(path), threshold=0.0))


def test_genuine_recording_passes_and_scores_its_windows(model):
    assert model.check(tone(9.0, amplitude=0.02), sample_rate=16_000) == pytest.approx(0.745, abs=0.01)


def test_rejects_synthetic_consent_recording_by_countermeasure_score(model):
    with pytest.raises(ConsentRecordingSynthetic, match="anti-spoofing"):
        model.check(tone(9.0, amplitude=0.1), sample_rate=16_000)


def test_rejects_recording_with_one_synthesized_window(model):
    """A genuine reading with a synthesized part spliced in scores as its worst window."""
    audio = np.concatenate([tone(4.5, amplitude=0.02), tone(4.5, amplitude=0.1), tone(4.5, amplitude=0.02)])
    with pytest.raises(ConsentRecordingSynthetic):
        model.check(audio, sample_rate=16_000)


def test_other_sample_rates_are_resampled_to_the_models(model):
    assert model.score(tone(6.0, amplitude=0.02, rate=48_000), sample_rate=48_000) == pytest.approx(0.745, abs=0.01)


def test_windows_cover_the_recording_and_tile_a_short_one():
    short = np.arange(10_000, dtype=np.float32)
    (only,) = windows(short)
    assert only.size == WINDOW_SAMPLES and np.array_equal(only[10_000:20_000], short)
    long = np.arange(WINDOW_SAMPLES * 2 + 5, dtype=np.float32)
    parts = windows(long)
    assert [p.size for p in parts] == [WINDOW_SAMPLES] * 3 and parts[-1][-1] == long[-1]


def test_rejects_a_model_file_whose_sha256_differs(tmp_path):
    path = tmp_path / "aasist.onnx"
    build_model(path)
    with pytest.raises(SpeakerModelHashMismatch):
        OnnxCountermeasure(CountermeasureSpec(path=path, sha256="0" * 64, threshold=0.0))


@pytest.mark.parametrize(("samples", "classes"), [(16_000, 2), ("samples", 3)])
def test_rejects_a_model_not_in_the_aasist_format(tmp_path, samples, classes):
    path = tmp_path / "other.onnx"
    digest = build_model(path, samples=samples, classes=classes)
    with pytest.raises(SpeakerModelError):
        OnnxCountermeasure(CountermeasureSpec(path=path, sha256=digest, threshold=0.0))
