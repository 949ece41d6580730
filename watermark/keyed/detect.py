"""Keyed detection: presence statistic, its null distribution, payload read-out and segments.

Null model. For a fixed unmarked input, the keyed cell signs are independent fair coins
(they come from HMAC of a secret key). The statistic for one alignment is

    z = sum_c y_c s_c / sqrt(sum_c y_c^2)

over sync cells c, where y_c is the folded, clipped cell feature (any function of the audio) and
s_c the keyed sign. Given the audio this is a normalised Rademacher sum, so P(z >= t) is the
Gaussian tail Q(t) (and at most exp(-t^2/2) by Hoeffding). The detector maximises over
alignments (time-scale hypotheses x block phases x frame offsets) and chunks; a union bound
over that count gives the reported false-positive probability.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import log_ndtr

from . import features as ft
from .layout import FRAME_BLOCKS, SYNC, Layout

CLIP_DB = 2.0  # the embedding margin: a cell adds at most this much, so loud onsets cannot dominate


@dataclass(frozen=True)
class Hypothesis:
    time_scale: float  # attacked duration / original duration
    freq_scale: float  # frequency shift to undo (a speed change moves pitch too)


def hypothesis_grid(*, max_tempo: float = 0.12, max_speed: float = 0.07, step: float = 0.01) -> list[Hypothesis]:
    """Identity first, then tempo changes (pitch kept) and speed changes (pitch moves with time)."""
    grid = [Hypothesis(1.0, 1.0)]
    n = int(round(max_tempo / step))
    for i in range(1, n + 1):
        for sign in (1, -1):
            a = 1.0 + sign * i * step
            grid.append(Hypothesis(a, 1.0))
            if i * step <= max_speed + 1e-9:
                grid.append(Hypothesis(a, 1.0 / a))
    return grid


@dataclass
class Alignment:
    z: float
    hypothesis: Hypothesis
    phase: int
    offset: int
    features: np.ndarray  # clipped cell features (frames, pairs) of this chunk under the hypothesis
    chunk_start_s: float


def cell_features(signal16: np.ndarray, hypothesis: Hypothesis) -> np.ndarray:
    """Clipped, median-centred pair differences for every frame start (rows) of one hypothesis."""
    starts = ft.frame_starts(signal16.size, hypothesis.time_scale)
    if starts.size < ft.FRAMES_PER_BLOCK:
        return np.zeros((0, ft.N_PAIRS))
    power = np.abs(ft.spectrum(signal16, starts)) ** 2
    levels = ft.block_levels_db(power, hypothesis.freq_scale)
    diff, valid = ft.pair_differences(levels)
    centred = np.zeros_like(diff)
    for k in range(ft.N_PAIRS):
        if valid[:, k].any():
            centred[:, k] = diff[:, k] - np.median(diff[valid[:, k], k])
    weight = valid * ft.cell_weights(levels)
    return np.clip(centred, -CLIP_DB, CLIP_DB) * weight


def fold(blocks: np.ndarray) -> np.ndarray:
    folded = np.zeros((FRAME_BLOCKS, ft.N_PAIRS))
    np.add.at(folded, np.arange(blocks.shape[0]) % FRAME_BLOCKS, blocks)
    return folded


def offset_scores(folded: np.ndarray, layout: Layout) -> np.ndarray:
    """z for every frame offset c, by circular correlation along the block axis."""
    sync = layout.sync_mask
    fy = np.fft.rfft(folded, axis=0)
    corr = np.fft.irfft(np.conj(fy) * np.fft.rfft(layout.signs * sync, axis=0), n=FRAME_BLOCKS, axis=0).sum(axis=1)
    energy = np.fft.irfft(
        np.conj(np.fft.rfft(folded**2, axis=0)) * np.fft.rfft(sync, axis=0), n=FRAME_BLOCKS, axis=0
    ).sum(axis=1)
    return np.where(energy > 1e-9, corr / np.sqrt(np.maximum(energy, 1e-9)), 0.0)


def best_alignment(chunk16: np.ndarray, *, layout: Layout, grid: list[Hypothesis], chunk_start_s: float) -> Alignment:
    best: Alignment | None = None
    for hypothesis in grid:
        feats = cell_features(chunk16, hypothesis)
        for phase in range(ft.FRAMES_PER_BLOCK):
            blocks = feats[phase :: ft.FRAMES_PER_BLOCK]
            if blocks.shape[0] == 0:
                continue
            scores = offset_scores(fold(blocks), layout)
            offset = int(np.argmax(scores))
            if best is None or scores[offset] > best.z:
                best = Alignment(float(scores[offset]), hypothesis, phase, offset, feats, chunk_start_s)
    if best is None:
        return Alignment(0.0, grid[0], 0, 0, np.zeros((0, ft.N_PAIRS)), chunk_start_s)
    return best


def tests_per_chunk(grid: list[Hypothesis]) -> int:
    return len(grid) * ft.FRAMES_PER_BLOCK * FRAME_BLOCKS


def false_positive_bound(z: float, n_tests: int) -> float:
    """Union bound over all alignments tried, of the Gaussian tail of one normalised Rademacher sum."""
    log_p = float(log_ndtr(-z)) + np.log(n_tests)
    return float(min(1.0, np.exp(log_p)))


def payload_soft_bits(alignment: Alignment, layout: Layout, n_coded: int) -> np.ndarray:
    """Soft value per coded bit (positive favours 0), summed over every payload cell seen."""
    blocks = alignment.features[alignment.phase :: ft.FRAMES_PER_BLOCK]
    folded = fold(blocks)
    positions = (np.arange(FRAME_BLOCKS) + alignment.offset) % FRAME_BLOCKS
    role = layout.role[positions]
    signs = layout.signs[positions]
    soft = np.zeros(n_coded)
    payload = role != SYNC
    np.add.at(soft, role[payload], (folded * signs)[payload])
    return soft


def segment_sums(alignment: Alignment, layout: Layout, *, resolution_s: float) -> dict[int, tuple[float, float]]:
    """Per slot of ``resolution_s`` in input time: (sum of signed sync evidence, sum of its squares)."""
    blocks = alignment.features[alignment.phase :: ft.FRAMES_PER_BLOCK]
    if blocks.shape[0] == 0:
        return {}
    positions = (np.arange(blocks.shape[0]) + alignment.offset) % FRAME_BLOCKS
    sync = layout.role[positions] == SYNC
    contrib = (blocks * layout.signs[positions] * sync).sum(axis=1)
    energy = (blocks**2 * sync).sum(axis=1)
    frame_index = alignment.phase + ft.FRAMES_PER_BLOCK * np.arange(blocks.shape[0])
    block_span = ft.HOP * (ft.FRAMES_PER_BLOCK - 1) + ft.N_FFT
    centre_s = (
        alignment.chunk_start_s
        + (frame_index * ft.HOP * alignment.hypothesis.time_scale + block_span / 2) / ft.SAMPLE_RATE
    )
    slots = np.floor(centre_s / resolution_s).astype(np.int64)
    sums: dict[int, tuple[float, float]] = {}
    for slot in np.unique(slots):
        inside = slots == slot
        sums[int(slot)] = (float(contrib[inside].sum()), float(energy[inside].sum()))
    return sums
