"""The keyed scheme on real speech: round trip, keys, excerpts, splicing, determinism."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from watermark import KeyedScheme
from watermark.audio import resample

from .conftest import TEST_KEY

PAYLOAD = bytes.fromhex("c0ffee01")


@pytest.fixture(scope="module")
def marked(english_speech, keyed):
    return [(keyed.embed(x, sample_rate=sr, payload=PAYLOAD), sr) for x, sr in english_speech]


def test_round_trip_keeps_length_rate_and_reads_payload(english_speech, marked, keyed):
    for (x, sr), (y, _) in zip(english_speech, marked, strict=True):
        assert y.shape == x.shape
        found = keyed.detect(y, sample_rate=sr)
        assert found.detected and found.payload_verified
        assert found.payload == PAYLOAD
        assert found.false_positive_probability < 1e-9


def test_embedding_is_deterministic(english_speech, keyed):
    x, sr = english_speech[0]
    first = keyed.embed(x, sample_rate=sr, payload=PAYLOAD)
    again = KeyedScheme(TEST_KEY).embed(x, sample_rate=sr, payload=PAYLOAD)
    assert np.array_equal(first, again)


def test_mark_is_quiet(english_speech, marked):
    for (x, _), (y, _) in zip(english_speech, marked, strict=True):
        snr_db = 10 * np.log10(np.sum(x**2) / np.sum((y - x) ** 2))
        assert snr_db > 12  # a gain pattern masked by the speech itself, not additive noise: PESQ is the real measure


def test_band_above_marked_range_is_untouched(english_speech, marked):
    (x, sr), (y, _) = english_speech[0], marked[0]
    spectrum = np.abs(np.fft.rfft(y - x))
    freqs = np.fft.rfftfreq(x.size, 1 / sr)
    assert spectrum[freqs > 9_000].max() < 3e-3 * spectrum.max()  # resampling filter leakage only, -50 dB


def test_unmarked_speech_is_not_detected(english_speech, long_german_speech, keyed):
    for x, sr in [*english_speech, long_german_speech]:
        found = keyed.detect(x, sample_rate=sr)
        assert not found.detected
        assert not found.payload_verified and found.payload is None
        assert found.false_positive_probability > 1e-3


def test_wrong_key_reads_no_payload_and_no_mark(marked):
    other = KeyedScheme(b"some-other-key-entirely-000000000")
    for y, sr in marked:
        found = other.detect(y, sample_rate=sr)
        assert not found.payload_verified and found.payload is None
        assert not found.detected


def test_forged_payload_with_another_key_does_not_verify(english_speech, keyed):
    """An attacker with their own key can mark audio, but not so that our key verifies it."""
    x, sr = english_speech[1]
    forged = KeyedScheme(b"attacker-key-attacker-key-attacker").embed(x, sample_rate=sr, payload=PAYLOAD)
    assert not keyed.detect(forged, sample_rate=sr).payload_verified


def test_payload_from_three_second_excerpt(marked, keyed):
    for y, sr in marked:
        start = int(0.7 * sr)
        found = keyed.detect(y[start : start + 3 * sr], sample_rate=sr)
        assert found.payload == PAYLOAD


def test_presence_in_one_second_excerpt(marked, keyed):
    for y, sr in marked[:2]:
        start = int(1.9 * sr)
        found = keyed.detect(y[start : start + sr], sample_rate=sr)
        # one second holds about 480 sync cells: clear evidence, though not always at the 1e-4 default
        assert found.false_positive_probability < 1e-3, found.score


def test_detects_after_resampling_to_8k(marked, keyed):
    y, sr = marked[0]
    narrow = resample(y, from_rate=sr, to_rate=8_000)
    found = keyed.detect(narrow, sample_rate=8_000)
    assert found.detected


def test_speed_change_is_found_by_scale_search(marked, keyed):
    y, sr = marked[2]
    faster = resample(y, from_rate=21, to_rate=20)  # 5 % faster, pitch up
    assert keyed.detect(faster, sample_rate=sr).detected


def test_splice_into_unmarked_speech_is_localized(marked, long_german_speech, keyed):
    y, sr = marked[0]
    host, host_rate = long_german_speech
    assert host_rate == sr
    before, after = host[: 3 * sr], host[3 * sr : 6 * sr]
    spliced = np.concatenate([before, y, after])
    found = keyed.detect(spliced, sample_rate=sr)
    assert found.detected
    inside = [s.score for s in found.segments if s.start_s >= 3.5 and s.end_s <= 3 + y.size / sr - 0.5]
    outside = [s.score for s in found.segments if s.end_s <= 2.5 or s.start_s >= 3 + y.size / sr + 0.5]
    assert np.median(inside) > 2.5
    assert max(abs(v) for v in outside) < 3.5
    assert all(
        b.start_s - a.start_s == pytest.approx(0.5) for a, b in zip(found.segments, found.segments[1:], strict=False)
    )


def test_payload_reads_from_pieces_marked_one_by_one_and_joined(speech_dir, keyed):
    # A streamed output is chunks of 4-6 s, each marked on its own: most 8 s detection windows
    # then hold two frame grids. Seed 12 is one of the joins that did not decode from those.
    clips = [sf.read(path, dtype="float64")[0] for path in sorted(speech_dir.glob("en_*.wav"))]
    for seed in range(16):
        rng = np.random.default_rng(seed)
        payload = rng.bytes(4)
        pieces = [
            keyed.embed(clips[c][: int(rng.uniform(4.0, 6.0) * 24_000)], sample_rate=24_000, payload=payload)
            for c in rng.choice(len(clips), 3, replace=False)
        ]
        found = keyed.detect(np.concatenate(pieces), sample_rate=24_000, segments=False)
        assert found.payload_verified and found.payload == payload, f"seed {seed}"
