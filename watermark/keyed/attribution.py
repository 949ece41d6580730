"""Short-clip attribution: which of the released outputs (the candidates) a clip was cut from.

A clip shorter than a payload frame (2.05 s), or a short excerpt after a lossy codec, often
holds too little of the frame to decode the 64-bit sealed message blindly. It does hold enough
to tell which of a known set of identifiers it carries: for each candidate m the statistic is

    X(m) = sum_i sigma_i(m) W_i

where W_i is the clip's evidence for coded bit i (``detect.payload_soft_bits``) and
sigma_i(m) = +-1 the coded bit candidate m would have put there.

The false-attribution bound. Under the current sealing (``keys``), the sealed message of any
identifier other than the one the audio carries (or of any identifier at all, for unmarked
audio) is uniformly random given the audio, so X(m) for a wrong m is the correlation of W with
the codeword of 64 random input bits. Its exact moment generating function follows from the
code's 64-state trellis (the input bits are independent, so the encoder state is a Markov
chain), and Chernoff's inequality turns it into a tail bound p(x) >= P(X >= x) that depends on
the audio only. The reported probability that the best candidate is a wrong one is the union
bound over every candidate, alignment and stage tried: N * A * S * p(X(best)).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.special import logsumexp

from . import code
from .detect import Alignment, payload_soft_bits
from .features import Floats
from .layout import CODED_BITS, Layout

N_STATES = 1 << (code.CONSTRAINT - 1)
CANDIDATE_BLOCK = 65_536  # candidates scored per matrix product (bounded memory)
_SIGN = 1.0 - 2.0 * code._OUT.astype(np.float64)  # (state, bit, output) as +-1


def log_mgf(soft: Floats, lambdas: Floats, n_bits: int) -> Floats:
    """log E[exp(lambda * sum_i sigma_i soft_i)] over codewords of ``n_bits`` uniform input bits, per lambda."""
    steps = n_bits + code.CONSTRAINT - 1
    pairs = soft.reshape(steps, 2)
    log_alpha = np.full((lambdas.size, N_STATES), -np.inf)
    log_alpha[:, 0] = 0.0  # the encoder starts in the all-zero state
    half = np.log(0.5)
    for t in range(steps):
        branch = _SIGN[:, :, 0] * pairs[t, 0] + _SIGN[:, :, 1] * pairs[t, 1]  # (state, bit)
        values = log_alpha[:, :, None] + lambdas[:, None, None] * branch[None]  # (lambda, state, bit)
        if t < n_bits:
            values = values + half
        else:  # tail: the input is a known zero
            values[:, :, 1] = -np.inf
        # next state = (bit << 5) | (state >> 1): states 2i and 2i+1 meet in state i (bit 0) or 32 + i (bit 1)
        merged = np.logaddexp(values[:, 0::2, :], values[:, 1::2, :])  # (lambda, 32, bit)
        log_alpha = np.concatenate([merged[:, :, 0], merged[:, :, 1]], axis=1)
    return np.asarray(logsumexp(log_alpha, axis=1), dtype=np.float64)


def log_tail_bound(soft: Floats, x: float, n_bits: int) -> float:
    """Natural log of the Chernoff bound min_lambda E[exp(lambda X)] exp(-lambda x) >= log P(X >= x)."""
    energy = float(np.sum(soft**2))
    if x <= 0.0 or energy <= 0.0:
        return 0.0
    centre = x / energy  # the optimum for independent bits; the trellis one lies near it

    def minimum(lambdas: Floats) -> tuple[float, float]:
        values = log_mgf(soft, lambdas, n_bits) - lambdas * x
        index = int(np.argmin(values))
        return float(values[index]), float(lambdas[index])

    coarse, near = minimum(centre * np.geomspace(0.05, 20.0, 40))
    fine, _ = minimum(near * np.geomspace(1 / 1.3, 1.3, 20))
    return min(0.0, coarse, fine)


@dataclass(frozen=True)
class Attribution:
    """The best candidate and the probability that it is not the request the clip came from."""

    best: bytes | None  # the highest-scoring candidate, whether or not it is accepted
    score: float  # its statistic, normalised: X / sqrt(sum W^2)
    false_attribution_probability: float  # union bound over every candidate, alignment and stage
    candidates: int


@dataclass(frozen=True)
class CandidateSet:
    """Identifiers of released outputs with the coded bits the current sealing wrote for each,
    packed (N, ceil(CODED_BITS / 8)); build it once per set with ``KeyedScheme.candidate_set``."""

    identifiers: tuple[bytes, ...]
    packed_codes: npt.NDArray[np.uint8]

    def __len__(self) -> int:
        return len(self.identifiers)


def attribute(
    alignments: Sequence[Alignment],
    *,
    layout: Layout,
    candidates: CandidateSet,
    n_bits: int,
) -> Attribution:
    """Score every candidate under each alignment; bound the chance that the best is a wrong one."""
    if not len(candidates) or not alignments:
        return Attribution(None, 0.0, 1.0, len(candidates))
    log_count = np.log(len(candidates) * len(alignments))
    best: tuple[float, bytes, float] | None = None  # (log bound, candidate, normalised score)
    for alignment in alignments:
        soft = payload_soft_bits(alignment, layout, CODED_BITS)
        energy = float(np.sum(soft**2))
        if energy <= 0.0:
            continue
        index, x = _best_candidate(candidates.packed_codes, soft)
        log_p = log_tail_bound(soft, x, n_bits) + log_count
        if best is None or log_p < best[0]:
            best = (log_p, candidates.identifiers[index], x / np.sqrt(energy))
    if best is None:
        return Attribution(None, 0.0, 1.0, len(candidates))
    return Attribution(best[1], float(best[2]), float(min(1.0, np.exp(best[0]))), len(candidates))


def _best_candidate(packed: npt.NDArray[np.uint8], soft: Floats) -> tuple[int, float]:
    """Index and statistic of the candidate whose codeword correlates best with ``soft``."""
    weights = soft.astype(np.float32)
    total = float(weights.sum())
    best_index, best_value = 0, -np.inf
    for start in range(0, packed.shape[0], CANDIDATE_BLOCK):
        ones = np.unpackbits(packed[start : start + CANDIDATE_BLOCK], axis=1, count=CODED_BITS).astype(np.float32)
        values = total - 2.0 * (ones @ weights)  # sum of (1 - 2 bit) * soft
        index = int(np.argmax(values))
        if values[index] > best_value:
            best_index, best_value = start + index, float(values[index])
    return best_index, best_value
