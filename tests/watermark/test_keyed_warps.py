"""The keyed detector under pitch, tempo and speed warps, and marks made by the released embedder.

Warps are made by sox, the tool the issue's measurements used; each family of synchronisation
hypotheses is exercised at a warp that lies between two grid points, not on one.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import resample_poly

from watermark import KeyedScheme
from watermark.audio import resample
from watermark.keyed import detect as dt
from watermark.keyed import features as ft
from watermark.keyed.hypotheses import PITCH_CENTS, SPEED_RANGE, TEMPO_RANGE, search_grid
from watermark.keyed.search import chunk_bounds

from .conftest import TEST_KEY

PAYLOAD = bytes.fromhex("5a17c0de")
FIXTURES = Path(__file__).parent / "fixtures"


def sox(samples: np.ndarray, rate: int, effect: list[str], folder: Path) -> np.ndarray:
    source, target = folder / "in.wav", folder / "out.wav"
    sf.write(source, samples, rate, subtype="FLOAT")
    subprocess.run(["sox", "-V1", str(source), str(target), *effect], check=True)
    warped, warped_rate = sf.read(target, dtype="float64")
    assert warped_rate == rate
    return np.asarray(warped)


@pytest.fixture(scope="module")
def marked(english_speech, keyed):
    x, sr = english_speech[1]
    return keyed.embed(x, sample_rate=sr, payload=PAYLOAD), sr


@pytest.mark.parametrize(
    ("effect", "family"),
    [
        (["pitch", "210"], "pitch"),
        (["pitch", "-185"], "pitch"),
        (["tempo", "0.8"], "tempo"),
        (["tempo", "1.25"], "tempo"),
        (["speed", "1.1"], "speed"),
        (["speed", "0.9"], "speed"),
    ],
)
def test_payload_survives_warp(marked, keyed, tmp_path, effect, family):
    y, sr = marked
    warped = sox(y, sr, effect, tmp_path)
    found = keyed.detect(warped, sample_rate=sr, segments=False)
    assert found.detected and found.false_positive_probability <= 1e-4
    assert found.payload_verified and found.payload == PAYLOAD
    assert found.warp is not None and found.warp["family"] == family


def test_warped_audio_is_not_read_with_a_wrong_key(marked, tmp_path):
    y, sr = marked
    warped = sox(y, sr, ["pitch", "200"], tmp_path)
    found = KeyedScheme(b"some-other-key-entirely-000000000").detect(warped, sample_rate=sr)
    assert not found.detected and not found.payload_verified and found.payload is None


def test_warped_unmarked_speech_is_not_detected(english_speech, keyed, tmp_path):
    for x, sr in english_speech[:2]:
        for effect in (["pitch", "-250"], ["tempo", "1.3"], ["speed", "0.87"]):
            found = keyed.detect(sox(x, sr, effect, tmp_path), sample_rate=sr, segments=False)
            assert not found.detected and found.payload is None
            assert found.false_positive_probability > 1e-3


@pytest.mark.parametrize("seconds", [5.0, 30.0])
def test_bound_counts_every_hypothesis_of_the_grid(long_german_speech, keyed, seconds):
    """The reported probability is the union bound over the whole grid, also when the search stops
    early; an input of several chunks counts the whole input once more for each unscaled hypothesis."""
    x, sr = long_german_speech
    x = x[: int(seconds * sr)]
    found = keyed.detect(x, sample_rate=sr, segments=False)
    grid = search_grid()
    n_chunks = len(chunk_bounds(resample(x, from_rate=sr, to_rate=ft.SAMPLE_RATE).size))
    unscaled = sum(h.time_scale == 1.0 for h in grid) if n_chunks > 1 else 0
    n_tests = (len(grid) * n_chunks + unscaled) * ft.FRAMES_PER_BLOCK * 64
    assert found.false_positive_probability == pytest.approx(dt.false_positive_bound(found.score, n_tests))


def test_grid_covers_the_warp_ranges_within_half_a_step():
    grid = search_grid()
    assert len(grid) == len(set(grid))
    tempo = np.log([h.time_scale for h in grid if h.family == "tempo"])
    speed = np.log([h.freq_scale for h in grid if h.family == "speed"])
    cents = np.array([1200 * np.log2(h.freq_scale) for h in grid if h.family == "pitch"])
    for values, low, high in (
        (tempo, np.log(TEMPO_RANGE[0]), np.log(TEMPO_RANGE[1])),
        (speed, np.log(SPEED_RANGE[0]), np.log(SPEED_RANGE[1])),
        (cents, -PITCH_CENTS, PITCH_CENTS),
    ):
        covered = np.sort(np.append(values, 0.0))  # the identity sits in every family
        assert covered[0] <= low + 1e-9 and covered[-1] >= high - 1e-9
        steps = np.diff(covered)
        assert np.allclose(steps, steps[0])  # uniform: any warp in range is within half a step of one
    assert all(h.time_scale * h.freq_scale == pytest.approx(1.0) for h in grid if h.family == "speed")


def test_scaled_bands_read_resampled_audio_like_the_original(english_speech):
    """Playing audio 10 % faster scales its frequencies by 1.1: the bands moved by 1.1, on frames
    1/1.1 apart, see the levels the unscaled bands saw in the original."""
    x, sr = english_speech[2]
    x16 = resample(x, from_rate=sr, to_rate=ft.SAMPLE_RATE)[: 6 * ft.SAMPLE_RATE]
    faster = resample_poly(x16, 10, 11)
    original = ft.Analysis(x16)
    rows, _ = original.frame_rows(1.0)
    reference = ft.block_levels_db(original.band_power(rows, 1.0))
    sped = ft.Analysis(faster)
    rows_fast, _ = sped.frame_rows(1 / 1.1)
    levels = ft.block_levels_db(sped.band_power(rows_fast, 1.1))
    n = min(reference.shape[0], levels.shape[0]) - 8
    loud = reference[:n] > np.percentile(reference, 50)
    error = np.abs(levels[:n] - reference[:n])[loud]
    assert np.median(error) < 1.0  # dB; unscaled bands on the sped-up audio are far off
    rows_plain, _ = sped.frame_rows(1.0)
    plain = ft.block_levels_db(sped.band_power(rows_plain, 1.0))
    m = min(n, plain.shape[0])
    assert np.median(np.abs(plain[:m] - reference[:m])[loud[:m]]) > 2 * np.median(error)


def test_reads_marks_made_by_the_first_released_embedder(speech_dir, keyed):
    """``fixtures/keyed_v1_mark.npz`` holds the mark that the embedder released before warp search
    (commit 4bb56c1) added to 5 s of en_elizabeth with the test key and payload c0ffee01."""
    stored = np.load(FIXTURES / "keyed_v1_mark.npz")
    x, sr = sf.read(speech_dir / f"{stored['clip']}.wav", dtype="float64")
    x = x[: int(stored["seconds"]) * sr]
    mark = resample(stored["mark16"].astype(np.float64), from_rate=ft.SAMPLE_RATE, to_rate=sr)
    released = np.clip(x + np.pad(mark, (0, max(0, x.size - mark.size)))[: x.size], -1.0, 1.0)
    found = keyed.detect(released, sample_rate=sr)
    assert found.detected and found.payload == bytes.fromhex("c0ffee01")
    assert KeyedScheme(TEST_KEY).detect(x, sample_rate=sr).payload is None  # the host alone carries nothing
