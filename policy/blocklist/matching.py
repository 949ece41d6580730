"""Score normalisation and exact search over the protected-speaker list.

Raw cosine scores do not mean the same thing for every voice: some voices sit close to many
others. Adaptive symmetric normalisation (AS-norm) rescales each comparison by how the entry and
the probe score against a cohort of speakers known *not* to be on the list, using only the top-K
most similar cohort speakers:

    norm(e, p) = ((s - mu_e) / sd_e + (s - mu_p) / sd_p) / 2

where mu/sd are the mean and standard deviation of the K highest cohort scores of the entry
model (precomputed when the entry is added) and of the probe (computed per check). Impostor
scores then follow roughly one distribution for every entry, so one threshold gives one
false-alarm rate per comparison, and the list-level rate is 1 - (1 - p)^N.

The cohort must be curated by an administrator, never filled from user uploads: a cohort that
contains clones of a protected voice raises mu_p for those clones and lowers their score.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

from policy.errors import BlocklistMisconfigured, EmbeddingInvalid

# How many of the most similar cohort speakers set the statistics. Adaptive (top-K) rather than
# the whole cohort because the region near a voice matters for its false alarms once the cohort
# is large; on the ~22-speaker cohorts of docs/benchmarks/blocklist.md, using all of them (any
# K >= 22) gave the lowest EER (1.9 % against 2.4 % at K = 20), so K = 50 keeps small cohorts
# whole and makes large ones adaptive.
DEFAULT_COHORT_TOP_K = 50
MIN_COHORT_SIZE = 5
# Default AS-norm thresholds for the resemblyzer embedder, from docs/benchmarks/blocklist.md:
# deny where the fitted impostor tail gives a per-comparison false-accept rate of 5e-5 (a
# 1,000-entry list then wrongly denies <= 5 % of innocent voices); review at the score that 98 %
# of a protected speaker's own speech reaches, so that audio is denied or held, never released.
# Another embedder needs its own calibration run.
DEFAULT_DENY_THRESHOLD = 4.3
DEFAULT_REVIEW_THRESHOLD = 2.1
# A cohort whose top scores have (near) zero spread would divide by ~0 and make every score
# huge; this floor keeps a degenerate cohort from turning into "deny everything" or worse.
MIN_COHORT_SD = 1e-3


class Decision(enum.StrEnum):
    DENY = "deny"
    REVIEW = "review"
    ALLOW = "allow"


@dataclass(frozen=True)
class BlocklistThresholds:
    """Normalised-score thresholds: ``>= deny`` is refused, ``>= review`` is held for an admin."""

    deny: float
    review: float

    def __post_init__(self) -> None:
        for label, value in (("deny", self.deny), ("review", self.review)):
            if not isinstance(value, int | float) or not np.isfinite(value):
                raise BlocklistMisconfigured(f"blocklist {label} threshold must be a finite number, got {value!r}")
        if self.review > self.deny:
            raise BlocklistMisconfigured(f"review threshold {self.review} is above the deny threshold {self.deny}")

    def decide(self, normalized_score: float) -> Decision:
        if normalized_score >= self.deny:
            return Decision.DENY
        if normalized_score >= self.review:
            return Decision.REVIEW
        return Decision.ALLOW


@dataclass(frozen=True)
class BlocklistDecision:
    """The outcome of one check. ``entry_id`` is the best-matching active entry (None when the
    list is empty); the scores are that entry's."""

    decision: Decision
    entry_id: int | None
    raw_score: float | None
    normalized_score: float | None


def unit_rows(matrix: np.ndarray, *, dimension: int, what: str) -> np.ndarray:
    """Rows as float32 unit vectors; refuses wrong widths, non-finite or zero rows."""
    rows = np.asarray(matrix, dtype=np.float32)
    if rows.ndim != 2 or rows.shape[1] != dimension:
        raise EmbeddingInvalid(f"{what} must be (n, {dimension}), got {rows.shape}")
    if not np.all(np.isfinite(rows)):
        raise EmbeddingInvalid(f"{what} contains non-finite values")
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    if rows.shape[0] and float(norms.min()) < 1e-8:
        raise EmbeddingInvalid(f"{what} contains a zero vector")
    return np.ascontiguousarray(rows / np.where(norms > 0, norms, 1.0), dtype=np.float32)


def speaker_model(sample_embeddings: np.ndarray) -> np.ndarray:
    """An entry's model from all its samples: the normalised mean of their unit embeddings."""
    rows = np.asarray(sample_embeddings, dtype=np.float32)
    if rows.ndim != 2 or rows.shape[0] == 0:
        raise EmbeddingInvalid("a speaker model needs at least one sample embedding")
    rows = unit_rows(rows, dimension=rows.shape[1], what="sample embeddings")
    mean = rows.mean(axis=0)
    norm = float(np.linalg.norm(mean))
    if norm < 1e-6:
        raise EmbeddingInvalid("sample embeddings cancel out; the samples are not one speaker")
    return (mean / norm).astype(np.float32)


class Cohort:
    """Unit embeddings of speakers known not to be on the list, and their top-K statistics."""

    def __init__(self, embeddings: np.ndarray, *, top_k: int = DEFAULT_COHORT_TOP_K) -> None:
        rows = np.asarray(embeddings, dtype=np.float32)
        if rows.ndim != 2 or rows.shape[0] < MIN_COHORT_SIZE:
            raise BlocklistMisconfigured(
                f"the score-normalisation cohort needs at least {MIN_COHORT_SIZE} speakers, "
                f"got {0 if rows.ndim != 2 else rows.shape[0]}"
            )
        if top_k < 2:
            raise BlocklistMisconfigured(f"cohort top_k must be at least 2, got {top_k}")
        self.embeddings = unit_rows(rows, dimension=rows.shape[1], what="cohort embeddings")
        self.dimension = rows.shape[1]
        self.top_k = min(top_k, self.embeddings.shape[0])

    def statistics(self, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard deviation of each vector's top-K cohort scores."""
        scores = np.atleast_2d(vectors) @ self.embeddings.T
        k = self.top_k
        top = np.partition(scores, scores.shape[1] - k, axis=1)[:, -k:]
        return top.mean(axis=1), np.maximum(top.std(axis=1), MIN_COHORT_SD)


def as_norm(raw: np.ndarray | float, *, entry_mean, entry_sd, probe_mean, probe_sd):
    """AS-norm of raw scores given entry and probe cohort statistics (broadcasts)."""
    return 0.5 * ((raw - entry_mean) / entry_sd + (raw - probe_mean) / probe_sd)
