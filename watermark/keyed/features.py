"""Time-frequency analysis shared by the keyed embedder and detector.

The mark lives in the *balance* between adjacent frequency bands: for each block of 4 STFT
frames (32 ms) and each pair of adjacent mel bands, the level difference in dB is pushed above
+margin or below -margin. A level ratio between neighbouring bands survives gain changes, codecs
(which keep the spectral envelope), noise at moderate SNR and band-limiting of other bands, and
because both bands of a pair move with the same time scale it tolerates small time misalignment.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

SAMPLE_RATE = 16_000
N_FFT = 512
HOP = 128
FRAMES_PER_BLOCK = 4
N_BANDS = 32
N_PAIRS = N_BANDS // 2
LOW_HZ = 250.0
HIGH_HZ = 7_000.0
FLOOR_DB_BELOW_PEAK = 50.0  # cells quieter than this carry nothing that survives any processing

WINDOW = np.hanning(N_FFT + 1)[:-1]  # periodic Hann: constant overlap-add at hop N_FFT/4
WINDOW32 = WINDOW.astype(np.float32)


def _mel(hz):
    return 2595.0 * np.log10(1.0 + np.asarray(hz) / 700.0)


def _hz(mel):
    return 700.0 * (10.0 ** (np.asarray(mel) / 2595.0) - 1.0)


BAND_EDGES_HZ = _hz(np.linspace(_mel(LOW_HZ), _mel(HIGH_HZ), N_BANDS + 1))


@lru_cache(maxsize=64)
def band_bins(freq_scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """First and one-past-last FFT bin of each band; ``freq_scale`` moves the bands to undo a pitch shift."""
    freqs = np.arange(N_FFT // 2 + 1) * SAMPLE_RATE / N_FFT
    edges = np.searchsorted(freqs, BAND_EDGES_HZ * freq_scale)
    lo, hi = edges[:-1], np.maximum(edges[1:], edges[:-1] + 1)  # every band keeps at least one bin
    return lo, np.minimum(hi, freqs.size)


@lru_cache(maxsize=4)
def band_of_bin() -> np.ndarray:
    """Band index of each bin at freq_scale 1, or N_BANDS for bins outside every band."""
    owner = np.full(N_FFT // 2 + 1, N_BANDS, dtype=np.int64)
    lo, hi = band_bins(1.0)
    for band in range(N_BANDS):
        owner[lo[band] : hi[band]] = band
    return owner


def band_power(power: np.ndarray, freq_scale: float = 1.0) -> np.ndarray:
    lo, hi = band_bins(freq_scale)
    csum = np.concatenate([np.zeros((power.shape[0], 1), dtype=power.dtype), np.cumsum(power, axis=1)], axis=1)
    return csum[:, hi] - csum[:, lo]


def frame_starts(n_samples: int, time_scale: float = 1.0) -> np.ndarray:
    """Sample positions of analysis frames; ``time_scale`` stretches the hop to undo a tempo change."""
    if n_samples < N_FFT:
        return np.zeros(0, dtype=np.int64)
    count = int(np.floor((n_samples - N_FFT) / (HOP * time_scale))) + 1
    starts = np.round(np.arange(count) * HOP * time_scale).astype(np.int64)
    return starts[starts + N_FFT <= n_samples]


def spectrum(signal: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Complex STFT (frames, bins) at the given frame starts (single precision: it is only measured)."""
    signal = np.ascontiguousarray(signal, dtype=np.float32)
    if starts.size > 1 and np.all(np.diff(starts) == HOP) and starts[0] == 0:
        frames = np.lib.stride_tricks.sliding_window_view(signal, N_FFT)[::HOP][: starts.size]
    else:
        frames = signal[starts[:, None] + np.arange(N_FFT)[None, :]]
    return np.fft.rfft(frames * WINDOW32, axis=1)


def block_levels_db(power: np.ndarray, freq_scale: float = 1.0) -> np.ndarray:
    """Level in dB of each band over every run of FRAMES_PER_BLOCK consecutive frames.

    Row j covers frames j .. j+3, so every block phase is available from one analysis.
    """
    bands = band_power(power, freq_scale).astype(np.float64)
    if bands.shape[0] < FRAMES_PER_BLOCK:
        return np.zeros((0, N_BANDS))
    csum = np.cumsum(np.vstack([np.zeros((1, N_BANDS)), bands]), axis=0)
    runs = csum[FRAMES_PER_BLOCK:] - csum[:-FRAMES_PER_BLOCK]
    return 10.0 * np.log10(np.maximum(runs, 1e-12))


def pair_differences(levels_db: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Upper-minus-lower band level per pair, and a mask of cells loud enough to mean anything."""
    diff = levels_db[:, 1::2] - levels_db[:, 0::2]
    if levels_db.size == 0:
        return diff, np.zeros_like(diff, dtype=bool)
    peak = np.percentile(levels_db, 99)
    floor = peak - FLOOR_DB_BELOW_PEAK
    valid = (levels_db[:, 1::2] > floor) & (levels_db[:, 0::2] > floor)
    return diff, valid


NOISE_PERCENTILE = 10.0
WEIGHT_START_DB = 0.0  # a cell counts fully once both its bands stand 6 dB above their floor
WEIGHT_SPAN_DB = 6.0


def cell_weights(levels_db: np.ndarray) -> np.ndarray:
    """Detector weight of each (row, pair) cell from how far both bands stand above their noise floor.

    The floor of a band is a low percentile of its level over time: silence for clean speech, the
    noise for noisy speech. Cells drowned in noise carry only noise, so they are faded out. The
    weight depends on the audio alone, never on the key, so the null distribution is unchanged.
    """
    if levels_db.shape[0] == 0:
        return np.zeros((0, N_PAIRS))
    floor = np.percentile(levels_db, NOISE_PERCENTILE, axis=0)
    above = levels_db - floor
    margin = np.minimum(above[:, 1::2], above[:, 0::2])
    return np.clip((margin - WEIGHT_START_DB) / WEIGHT_SPAN_DB, 0.0, 1.0)
