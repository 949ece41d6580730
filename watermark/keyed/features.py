"""Time-frequency analysis shared by the keyed embedder and detector.

The mark lives in the *balance* between adjacent frequency bands: for each block of 4 STFT
frames (32 ms) and each pair of adjacent mel bands, the level difference in dB is pushed above
+margin or below -margin. A level ratio between neighbouring bands survives gain changes, codecs
(which keep the spectral envelope), noise at moderate SNR and band-limiting of other bands, and
because both bands of a pair move with the same time scale it tolerates small time misalignment.

The detector reads the same features under warps. A tempo change stretches time, a pitch shift
scales frequency, a speed change does both; all three keep the features themselves and lose only
their synchronisation. ``Analysis`` computes one dense STFT of the input, from which the features
under any (time scale, frequency scale) hypothesis are gathered: time-scaled frames are the
nearest dense frames, and frequency-scaled bands integrate the power spectrum between scaled,
fractional band edges, without re-synthesising the audio for each hypothesis.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]

SAMPLE_RATE = 16_000
N_FFT = 512
HOP = 128
FRAMES_PER_BLOCK = 4
N_BANDS = 32
N_PAIRS = N_BANDS // 2
LOW_HZ = 250.0
HIGH_HZ = 7_000.0
FLOOR_DB_BELOW_PEAK = 50.0  # cells quieter than this carry nothing that survives any processing
NOISE_PERCENTILE = 10.0
WEIGHT_START_DB = 0.0  # a cell counts fully once both its bands stand 6 dB above their floor
WEIGHT_SPAN_DB = 6.0
# The detector's dense analysis hop: a time-scaled frame grid is never more than 2 ms from a
# dense frame, a sixteenth of a block. Every second dense frame is an unscaled frame.
DENSE_HOP = HOP // 2

WINDOW = np.hanning(N_FFT + 1)[:-1]  # periodic Hann: constant overlap-add at hop N_FFT/4
WINDOW32 = WINDOW.astype(np.float32)


def _mel(hz: Floats | float) -> Floats:
    return np.asarray(2595.0 * np.log10(1.0 + np.asarray(hz) / 700.0), dtype=np.float64)


def _hz(mel: Floats) -> Floats:
    return np.asarray(700.0 * (10.0 ** (np.asarray(mel) / 2595.0) - 1.0), dtype=np.float64)


BAND_EDGES_HZ = _hz(np.linspace(_mel(LOW_HZ), _mel(HIGH_HZ), N_BANDS + 1))


@lru_cache(maxsize=4)
def band_bins() -> tuple[Ints, Ints]:
    """First and one-past-last FFT bin of each band (every band keeps at least one bin)."""
    freqs = np.arange(N_FFT // 2 + 1) * SAMPLE_RATE / N_FFT
    edges = np.searchsorted(freqs, BAND_EDGES_HZ).astype(np.int64)
    lo, hi = edges[:-1], np.maximum(edges[1:], edges[:-1] + 1)
    return lo, np.minimum(hi, freqs.size)


@lru_cache(maxsize=4)
def band_of_bin() -> Ints:
    """Band index of each bin, or N_BANDS for bins outside every band."""
    owner = np.full(N_FFT // 2 + 1, N_BANDS, dtype=np.int64)
    lo, hi = band_bins()
    for band in range(N_BANDS):
        owner[lo[band] : hi[band]] = band
    return owner


@lru_cache(maxsize=256)
def scaled_edges(freq_scale: float) -> tuple[Floats, Floats]:
    """Fractional band edges, in cumulative-bin coordinates, of the bands moved by ``freq_scale``.

    Bin k covers [k - 0.5, k + 0.5) in bin units, so band [lo, hi) covers [lo - 0.5, hi - 0.5);
    content scaled by ``freq_scale`` covers that interval times the scale. Coordinate x of the
    cumulative power sum C (C[j] = sum of bins below j) is the frequency coordinate plus 0.5.
    At scale 1 the edges are the integer bins, so unscaled features are exactly the embedder's.
    """
    lo, hi = band_bins()
    top = float(N_FFT // 2 + 1)
    return (
        np.clip((lo - 0.5) * freq_scale + 0.5, 0.0, top),
        np.clip((hi - 0.5) * freq_scale + 0.5, 0.0, top),
    )


def frame_starts(n_samples: int) -> Ints:
    """Sample positions of the embedder's analysis frames."""
    if n_samples < N_FFT:
        return np.zeros(0, dtype=np.int64)
    return np.arange(0, n_samples - N_FFT + 1, HOP, dtype=np.int64)


def spectrum(signal: Floats, starts: Ints) -> npt.NDArray[np.complex64]:
    """Complex STFT (frames, bins) at the given frame starts (single precision: it is only measured)."""
    samples = np.ascontiguousarray(signal, dtype=np.float32)
    frames = samples[starts[:, None] + np.arange(N_FFT)[None, :]]
    return np.fft.rfft(frames * WINDOW32, axis=1).astype(np.complex64)


def band_power(power: npt.NDArray[np.floating]) -> Floats:
    """Power of each band (unscaled, integer bins) in each frame."""
    lo, hi = band_bins()
    csum = np.concatenate([np.zeros((power.shape[0], 1)), np.cumsum(power, axis=1, dtype=np.float64)], axis=1)
    return np.asarray(csum[:, hi] - csum[:, lo], dtype=np.float64)


def block_levels_db(bands: Floats) -> Floats:
    """Level in dB of each band over every run of FRAMES_PER_BLOCK consecutive frames.

    Row j covers frames j .. j+3, so every block phase is available from one analysis.
    """
    n = bands.shape[0] - FRAMES_PER_BLOCK + 1
    if n <= 0:
        return np.zeros((0, bands.shape[1]))
    runs = bands[:n].copy()
    for k in range(1, FRAMES_PER_BLOCK):
        runs += bands[k : k + n]
    return np.asarray(10.0 * np.log10(np.maximum(runs, 1e-12)), dtype=np.float64)


def pair_differences(levels_db: Floats, *, peak_db: float | None = None) -> tuple[Floats, npt.NDArray[np.bool_]]:
    """Upper-minus-lower band level per pair, and a mask of cells loud enough to mean anything.

    ``peak_db`` is the input's loud level (the 99th percentile of its band levels); by default
    it is measured on ``levels_db``.
    """
    diff = levels_db[:, 1::2] - levels_db[:, 0::2]
    if levels_db.size == 0:
        return diff, np.zeros_like(diff, dtype=bool)
    peak = float(np.percentile(levels_db, 99)) if peak_db is None else peak_db
    floor = peak - FLOOR_DB_BELOW_PEAK
    valid = (levels_db[:, 1::2] > floor) & (levels_db[:, 0::2] > floor)
    return diff, valid


def cell_weights(levels_db: Floats) -> Floats:
    """Detector weight of each (row, pair) cell from how far both bands stand above their noise floor.

    The floor of a band is a low percentile of its level over time: silence for clean speech, the
    noise for noisy speech. Cells drowned in noise carry only noise, so they are faded out. The
    weight depends on the audio alone, never on the key, so the null distribution is unchanged.
    """
    if levels_db.shape[0] == 0:
        return np.zeros((0, N_PAIRS))
    # Rows overlap by three frames: every fourth row covers the input as well and costs a quarter.
    sample = levels_db[::FRAMES_PER_BLOCK]
    rank = int(NOISE_PERCENTILE / 100.0 * (sample.shape[0] - 1))
    floor = np.partition(sample, rank, axis=0)[rank]
    above = levels_db - floor
    margin = np.minimum(above[:, 1::2], above[:, 0::2])
    return np.asarray(np.clip((margin - WEIGHT_START_DB) / WEIGHT_SPAN_DB, 0.0, 1.0), dtype=np.float64)


def masked_median(values: Floats, valid: npt.NDArray[np.bool_]) -> Floats:
    """Median of each column over its valid rows (0 for a column without any)."""
    count = valid.sum(axis=0)
    # sorting along contiguous rows of the transpose is several times faster than along columns
    ordered = np.sort(np.where(valid, values, np.inf).T, axis=1)
    columns = np.arange(values.shape[1])
    low, high = np.maximum((count - 1) // 2, 0), np.maximum(count // 2, 0)
    median = 0.5 * (ordered[columns, low] + ordered[columns, high])
    return np.where(count > 0, median, 0.0)


class Analysis:
    """One dense STFT of a 16 kHz signal, read under any time and frequency scale.

    Memory grows with the input (about 2 kB per dense frame), so callers analyse long inputs
    in spans of a minute or so.
    """

    def __init__(self, signal16: Floats) -> None:
        samples = np.ascontiguousarray(signal16, dtype=np.float32)
        self.n_samples = samples.size
        if samples.size < N_FFT:
            self._csum = np.zeros((0, N_FFT // 2 + 2))
            return
        frames = np.lib.stride_tricks.sliding_window_view(samples, N_FFT)[::DENSE_HOP]
        spec = np.fft.rfft(frames * WINDOW32, axis=1)
        power = spec.real.astype(np.float64) ** 2 + spec.imag.astype(np.float64) ** 2
        self._csum = np.concatenate([np.zeros((power.shape[0], 1)), np.cumsum(power, axis=1)], axis=1)
        self._csum_by_bin = np.ascontiguousarray(self._csum.T)  # gathering edges first is cheaper
        self._unscaled: Floats | None = None

    @property
    def n_dense(self) -> int:
        return int(self._csum.shape[0])

    def frame_rows(self, time_scale: float) -> tuple[Ints, Floats]:
        """Dense rows nearest to the frames of a grid with hop HOP * time_scale, and their exact starts."""
        if self.n_dense == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        last_start = (self.n_dense - 1) * DENSE_HOP
        hop = HOP * time_scale
        starts = np.asarray(np.arange(int(np.floor(last_start / hop + 1e-9)) + 1) * hop, dtype=np.float64)
        rows = np.minimum(np.round(starts / DENSE_HOP).astype(np.int64), self.n_dense - 1)
        return rows, starts

    def band_power(self, rows: Ints, freq_scale: float) -> Floats:
        """Band powers (rows, N_BANDS) of the bands moved by ``freq_scale``, at the given dense rows."""
        if freq_scale == 1.0:
            if self._unscaled is None:
                lo, hi = band_bins()
                self._unscaled = self._csum[:, hi] - self._csum[:, lo]
            return np.asarray(self._unscaled[rows], dtype=np.float64)
        lower, upper = scaled_edges(freq_scale)
        return self._interpolate(rows, upper) - self._interpolate(rows, lower)

    def _interpolate(self, rows: Ints, x: Floats) -> Floats:
        """Cumulative power at fractional bin coordinates: linear between integer bins."""
        j = np.minimum(np.floor(x).astype(np.int64), self._csum.shape[1] - 2)
        w = x - j
        below = self._csum_by_bin[j][:, rows]
        above = self._csum_by_bin[j + 1][:, rows]
        return np.asarray((below + (above - below) * w[:, None]).T, dtype=np.float64)
