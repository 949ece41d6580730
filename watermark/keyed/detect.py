"""Keyed detection: presence statistic, its null distribution, alignment search, payload read-out, segments.

Null model. For a fixed unmarked input, the keyed cell signs are independent fair coins
(they come from HMAC of a secret key). The statistic for one alignment is

    z = sum_c y_c s_c / sqrt(sum_c y_c^2)

over sync cells c, where y_c is the folded, clipped cell feature (any function of the audio) and
s_c the keyed sign. Given the audio this is a normalised Rademacher sum, so P(z >= t) is the
Gaussian tail Q(t) (and at most exp(-t^2/2) by Hoeffding). The detector maximises over
alignments (warp hypotheses x block phases x frame offsets) and chunks; a union bound over that
count gives the reported false-positive probability.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.special import log_ndtr

from . import features as ft
from .features import Floats, Ints
from .hypotheses import Hypothesis
from .layout import FRAME_BLOCKS, SYNC, Layout

CLIP_DB = 2.0  # the embedding margin: a cell adds at most this much, so loud onsets cannot dominate


@dataclass(frozen=True)
class Alignment:
    """One chunk's best alignment: its statistic and the blocks it read, in input order."""

    z: float
    hypothesis: Hypothesis
    phase: int
    offset: int
    blocks: Floats  # (blocks, pairs) clipped cell features of this chunk at this phase
    block_numbers: Ints  # each block's number on the hypothesis's block grid (fold position before offset)
    centres_s: Floats  # centre of each block in input seconds
    chunk_start_s: float

    @property
    def positions(self) -> Ints:
        """Each block's position in the keyed frame."""
        return np.asarray((self.block_numbers + self.offset) % FRAME_BLOCKS, dtype=np.int64)


NO_ALIGNMENT_BLOCKS = np.zeros((0, ft.N_PAIRS))


@dataclass(frozen=True)
class HypothesisFeatures:
    """Pair differences of a whole analysed span under one hypothesis, before centring.

    Each chunk centres every pair on its own median: the embedder centred on the median of the
    output it marked, and pieces marked one by one and then joined each have their own.
    """

    hypothesis: Hypothesis
    diff: Floats  # (rows, pairs): row j is the block of frames j .. j+3
    valid: npt.NDArray[np.bool_]
    weight: Floats  # loudness weight of each cell (0 where not valid)
    starts: Floats  # start of frame j in span samples (attacked time)


def loud_level_db(analysis: ft.Analysis) -> float:
    """The span's loud band level (99th percentile, unscaled): the reference for the validity floor."""
    rows, _ = analysis.frame_rows(1.0)
    levels = ft.block_levels_db(analysis.band_power(rows, 1.0))
    return float(np.percentile(levels, 99)) if levels.size else 0.0


def hypothesis_features(analysis: ft.Analysis, hypothesis: Hypothesis, *, peak_db: float) -> HypothesisFeatures:
    """Pair differences of every block under one hypothesis, with their validity and loudness weights."""
    rows, starts = analysis.frame_rows(hypothesis.time_scale)
    levels = ft.block_levels_db(analysis.band_power(rows, hypothesis.freq_scale))
    if levels.shape[0] == 0:
        empty = np.zeros((0, ft.N_PAIRS))
        return HypothesisFeatures(hypothesis, empty, empty.astype(bool), empty, starts)
    diff, valid = ft.pair_differences(levels, peak_db=peak_db)
    return HypothesisFeatures(hypothesis, diff, valid, valid * ft.cell_weights(levels), starts)


@dataclass(frozen=True)
class Chunk:
    start: int  # span samples, attacked time
    stop: int
    start_s: float  # input seconds


def chunk_cells(feats: HypothesisFeatures, chunk: Chunk) -> tuple[Floats, int]:
    """Clipped, chunk-centred, weighted cells of the blocks inside the chunk, and the first one's row."""
    n = feats.diff.shape[0]
    if n == 0:
        return NO_ALIGNMENT_BLOCKS, 0
    first = feats.starts[:n]
    last_end = feats.starts[ft.FRAMES_PER_BLOCK - 1 : ft.FRAMES_PER_BLOCK - 1 + n] + ft.N_FFT
    j0 = int(np.searchsorted(first, chunk.start - 1e-6))
    j1 = int(np.searchsorted(last_end, chunk.stop + 1e-6))
    if j1 <= j0:
        return NO_ALIGNMENT_BLOCKS, j0
    diff, valid = feats.diff[j0:j1], feats.valid[j0:j1]
    centred = diff - ft.masked_median(diff, valid)
    return np.clip(centred, -CLIP_DB, CLIP_DB) * feats.weight[j0:j1], j0


def _phase_blocks(feats: HypothesisFeatures, cells: Floats, j0: int, phase: int) -> tuple[Floats, Ints, Floats]:
    """The blocks of one phase among a chunk's cells: features, block numbers, centres (span samples)."""
    j = (phase - j0) % ft.FRAMES_PER_BLOCK
    local = np.arange(j, cells.shape[0], ft.FRAMES_PER_BLOCK)
    rows = j0 + local
    centres = (feats.starts[rows] + feats.starts[rows + ft.FRAMES_PER_BLOCK - 1] + ft.N_FFT) / 2.0
    return cells[local], (rows - phase) // ft.FRAMES_PER_BLOCK, centres


def fold(blocks: Floats, block_numbers: Ints) -> Floats:
    """Sum of the blocks at each position of the frame (before the offset); block numbers are consecutive."""
    if blocks.shape[0] == 0:
        return np.zeros((FRAME_BLOCKS, ft.N_PAIRS))
    lead = int(block_numbers[0]) % FRAME_BLOCKS
    total = lead + blocks.shape[0]
    padded = np.zeros((-(-total // FRAME_BLOCKS) * FRAME_BLOCKS, blocks.shape[1]))
    padded[lead:total] = blocks
    return np.asarray(padded.reshape(-1, FRAME_BLOCKS, blocks.shape[1]).sum(axis=0), dtype=np.float64)


class OffsetScorer:
    """z for every frame offset of many folded chunks at once, by circular correlation along blocks."""

    def __init__(self, layout: Layout) -> None:
        sync = layout.sync_mask
        self._pattern = np.conj(np.fft.rfft(layout.signs * sync, axis=0))
        self._mask = np.conj(np.fft.rfft(sync, axis=0))

    def scores(self, folded: Floats) -> Floats:
        """``folded`` is (n, FRAME_BLOCKS, pairs); returns (n, FRAME_BLOCKS)."""
        spectra = np.fft.rfft(np.stack([folded, folded**2]), axis=2)
        # corr[c] = sum_b sum_k folded[b, k] * pattern[(b + c) % F, k]; energy likewise with the sync mask
        products = np.stack([(spectra[0] * self._pattern).sum(axis=2), (spectra[1] * self._mask).sum(axis=2)])
        corr, energy = np.fft.irfft(np.conj(products), n=FRAME_BLOCKS, axis=2)
        return np.asarray(np.where(energy > 1e-9, corr / np.sqrt(np.maximum(energy, 1e-9)), 0.0), dtype=np.float64)


def best_alignments(
    feats: HypothesisFeatures, chunks: list[Chunk], *, scorer: OffsetScorer, span_start_s: float
) -> list[Alignment]:
    """The best phase and offset of each chunk under one hypothesis."""
    pieces = []
    for chunk in chunks:
        cells, j0 = chunk_cells(feats, chunk)
        pieces.append([_phase_blocks(feats, cells, j0, phase) for phase in range(ft.FRAMES_PER_BLOCK)])
    folded = np.stack([fold(blocks, numbers) for per_chunk in pieces for blocks, numbers, _ in per_chunk])
    scores = scorer.scores(folded).reshape(len(chunks), ft.FRAMES_PER_BLOCK, FRAME_BLOCKS)
    found = []
    for index, chunk in enumerate(chunks):
        phase, offset = np.unravel_index(int(np.argmax(scores[index])), scores[index].shape)
        blocks, numbers, centres = pieces[index][int(phase)]
        found.append(
            Alignment(
                z=float(scores[index, phase, offset]) if blocks.shape[0] else 0.0,
                hypothesis=feats.hypothesis,
                phase=int(phase),
                offset=int(offset),
                blocks=blocks,
                block_numbers=numbers,
                centres_s=span_start_s + centres / ft.SAMPLE_RATE,
                chunk_start_s=chunk.start_s,
            )
        )
    return found


def tests_per_chunk(n_hypotheses: int) -> int:
    return n_hypotheses * ft.FRAMES_PER_BLOCK * FRAME_BLOCKS


def false_positive_bound(z: float, n_tests: int) -> float:
    """Union bound over all alignments tried, of the Gaussian tail of one normalised Rademacher sum."""
    log_p = float(log_ndtr(-z)) + np.log(n_tests)
    return float(min(1.0, np.exp(log_p)))


def payload_soft_bits(alignment: Alignment, layout: Layout, n_coded: int) -> Floats:
    """Soft value per coded bit (positive favours 0), summed over every payload cell seen."""
    folded = fold(alignment.blocks, alignment.block_numbers)
    positions = (np.arange(FRAME_BLOCKS) - alignment.offset) % FRAME_BLOCKS  # fold slot b sits at b + offset
    folded = folded[positions]  # now indexed by frame position
    payload = layout.role != SYNC
    soft = np.zeros(n_coded)
    np.add.at(soft, layout.role[payload], (folded * layout.signs)[payload])
    return soft


def segment_sums(alignment: Alignment, layout: Layout, *, resolution_s: float) -> dict[int, tuple[float, float]]:
    """Per slot of ``resolution_s`` in input time: (sum of signed sync evidence, sum of its squares)."""
    if alignment.blocks.shape[0] == 0:
        return {}
    positions = alignment.positions
    sync = layout.role[positions] == SYNC
    contrib = (alignment.blocks * layout.signs[positions] * sync).sum(axis=1)
    energy = (alignment.blocks**2 * sync).sum(axis=1)
    slots = np.floor(alignment.centres_s / resolution_s).astype(np.int64)
    sums: dict[int, tuple[float, float]] = {}
    for slot in np.unique(slots):
        inside = slots == slot
        sums[int(slot)] = (float(contrib[inside].sum()), float(energy[inside].sum()))
    return sums
