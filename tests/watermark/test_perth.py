"""PerTh layer with the weights shipped in resemble-perth."""

from __future__ import annotations

import numpy as np
import pytest

from watermark import WatermarkModelError, perth_layer
from watermark.perth_layer import PerthScheme


@pytest.fixture(scope="module")
def perth():
    return PerthScheme()


def test_round_trip_and_segments(perth, english_speech):
    x, sr = english_speech[0]
    y = perth.embed(x, sample_rate=sr)
    assert y.shape == x.shape
    found = perth.detect(y, sample_rate=sr)
    assert found.detected and found.score > 0.9
    assert found.false_positive_probability is None and found.payload is None
    assert found.segments[0].start_s == 0.0 and found.segments[0].end_s == pytest.approx(0.5)
    presence = perth.detect(y, sample_rate=sr, segments=False)
    assert presence.detected and presence.score == pytest.approx(found.score) and presence.segments == ()


def test_unmarked_speech_is_not_detected(perth, english_speech):
    for x, sr in english_speech[1:3]:
        assert not perth.detect(x, sample_rate=sr).detected


def test_band_above_perth_rate_is_untouched(perth, english_speech):
    from watermark.audio import resample

    x, sr = english_speech[1]
    wide = resample(x, from_rate=sr, to_rate=48_000) + 1e-3 * np.sin(
        2 * np.pi * 20_000 * np.arange(int(x.size * 2)) / 48_000
    )
    y = perth.embed(wide, sample_rate=48_000)
    spectrum = np.abs(np.fft.rfft(y - wide))
    freqs = np.fft.rfftfreq(wide.size, 1 / 48_000)
    assert spectrum[freqs > 17_000].max() < 3e-3 * spectrum.max()


def test_refuses_weights_that_do_not_match_the_pin(monkeypatch):
    monkeypatch.setattr(perth_layer, "PERTH_SHA256", "0" * 64)
    with pytest.raises(WatermarkModelError, match="does not match"):
        PerthScheme()
