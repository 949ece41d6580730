"""Informed embedding: push each cell's band-pair level difference to its target sign.

Plain spread spectrum adds a fixed +-alpha and leaves the speech itself as the dominant noise
of the detector. Here the embedder knows the host, measures each cell's difference and changes
it only as much as needed to sit at least ``margin_db`` on the target side, capped at
``max_change_db``. Cells that already agree cost nothing. Gains are multiplicative on the STFT,
so the added distortion is proportional to (and masked by) the speech in the same band and block.
"""

from __future__ import annotations

import numpy as np

from . import features as ft
from .layout import FRAME_BLOCKS, Layout


def _frame_gain_matrix(pair_gain_db: np.ndarray, n_frames: int) -> np.ndarray:
    """Per-(frame, bin) linear gain from per-(block, pair) dB changes; the pair's upper band rises, lower falls."""
    band_gain_db = np.zeros((pair_gain_db.shape[0], ft.N_BANDS))
    band_gain_db[:, 1::2] = pair_gain_db / 2.0
    band_gain_db[:, 0::2] = -pair_gain_db / 2.0
    # Interpolate between block centres: a gain that jumps every 32 ms sounds rough.
    centres = np.arange(band_gain_db.shape[0]) * ft.FRAMES_PER_BLOCK + (ft.FRAMES_PER_BLOCK - 1) / 2
    frames = np.arange(n_frames)
    frame_gain_db = np.stack([np.interp(frames, centres, band_gain_db[:, b]) for b in range(ft.N_BANDS)], axis=1)
    linear = np.concatenate([10.0 ** (frame_gain_db / 20.0), np.ones((n_frames, 1))], axis=1)
    return linear[:, ft.band_of_bin()]  # bins outside every band keep gain 1


def _overlap_add(frames: np.ndarray, n_samples: int) -> np.ndarray:
    """Weighted overlap-add of frames that start every HOP samples from 0 (N_FFT is 4 hops)."""
    quarters = ft.N_FFT // ft.HOP
    n = frames.shape[0]
    windowed = (frames * ft.WINDOW).reshape(n, quarters, ft.HOP)
    out = np.zeros((n + quarters - 1, ft.HOP))
    norm = np.zeros((n + quarters - 1, ft.HOP))
    w2 = (ft.WINDOW**2).reshape(quarters, ft.HOP)
    for q in range(quarters):
        out[q : q + n] += windowed[:, q]
        norm[q : q + n] += w2[q]
    out, norm = out.reshape(-1), norm.reshape(-1)
    result = np.zeros(n_samples)
    m = min(n_samples, out.size)
    result[:m] = np.where(norm[:m] > 1e-3, out[:m] / np.maximum(norm[:m], 1e-3), 0.0)
    return result


def embed_16k(
    host: np.ndarray,
    *,
    layout: Layout,
    coded_bits: np.ndarray,
    margin_db: float,
    max_change_db: float,
    iterations: int,
) -> np.ndarray:
    """The mark as a signal at 16 kHz, to be added to ``host`` (also 16 kHz)."""
    starts = ft.frame_starts(host.size)
    n_frames = starts.size
    n_blocks = n_frames // ft.FRAMES_PER_BLOCK
    if n_blocks < 1:
        raise ValueError("audio too short for one block")
    frames = np.lib.stride_tricks.sliding_window_view(host, ft.N_FFT)[:: ft.HOP][:n_frames]
    stft = np.fft.rfft(frames * ft.WINDOW, axis=1).astype(np.complex64)  # single precision is plenty for a mark
    host_levels = ft.block_levels_db(ft.band_power(np.abs(stft) ** 2))[:: ft.FRAMES_PER_BLOCK][:n_blocks]
    host_diff, valid = ft.pair_differences(host_levels)
    # the detector centres each pair on its median; centre the host the same way
    centre = np.array([np.median(host_diff[valid[:, k], k]) if valid[:, k].any() else 0.0 for k in range(ft.N_PAIRS)])
    targets = layout.targets(coded_bits)[np.arange(n_blocks) % FRAME_BLOCKS]

    def synthesise(pair_gain_db: np.ndarray) -> np.ndarray:
        gains = _frame_gain_matrix(pair_gain_db, n_frames).astype(np.float32)
        return _overlap_add(np.fft.irfft(stft * (gains - 1.0), n=ft.N_FFT, axis=1), host.size)

    pair_gain_db = np.zeros((n_blocks, ft.N_PAIRS))
    diff = host_diff
    for iteration in range(int(iterations)):
        if iteration:  # re-measure: neighbouring blocks and bands leak into each other through the window
            levels = ft.block_levels_db(
                ft.band_power(np.abs(ft.spectrum(host + synthesise(pair_gain_db), starts)) ** 2)
            )
            levels = levels[:: ft.FRAMES_PER_BLOCK][:n_blocks]
            diff = levels[:, 1::2] - levels[:, 0::2]
        shortfall = np.maximum(margin_db - targets * (diff - centre), 0.0)
        pair_gain_db = np.clip(pair_gain_db + targets * shortfall * valid, -max_change_db, max_change_db)
    return synthesise(pair_gain_db)
