"""Score normalisation and exact search over the protected-speaker list.

Raw cosine scores do not mean the same thing for every voice: some voices sit close to many
others. Both normalisations rescale a comparison by how voices score against a cohort of
speakers known *not* to be on the list, using only the top-K most similar cohort speakers
(mu/sd: mean and standard deviation of those K scores):

    AS-norm   (adaptive symmetric): norm(e, p) = ((s - mu_e) / sd_e + (s - mu_p) / sd_p) / 2
    Top-norm  (per entry):          norm(e, p) = (s - mu_e) / sd_e
    none      (centred cosine):     norm(e, p) = s, only the calibration maps it

The entry's statistics are computed once, when the index is built; AS-norm also needs the
probe's, one cohort pass per check. Either way the normalised score is ``raw * slope + intercept``
with per-entry ``slope`` and ``intercept``, which is what the search kernel works on. Impostor
scores then follow roughly one distribution for every entry, so one threshold gives one
false-alarm rate per comparison, and the list-level rate is at most 1 - (1 - p)^N.

The cohort must be curated by an administrator, never filled from user uploads: a cohort that
contains clones of a protected voice raises mu_p for those clones and lowers their score.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Literal

import numpy as np

from policy.errors import BlocklistMisconfigured, EmbeddingInvalid

# How many of the most similar cohort speakers set the statistics. Adaptive (top-K) rather than
# the whole cohort because the region near a voice matters for its false alarms once the cohort
# is large; on the ~22-speaker cohorts of docs/benchmarks/blocklist.md, using all of them (any
# K >= 22) gave the lowest EER (1.9 % against 2.4 % at K = 20), so K = 50 keeps small cohorts
# whole and makes large ones adaptive.
DEFAULT_COHORT_TOP_K = 50
MIN_COHORT_SIZE = 5
# A cohort whose top scores have (near) zero spread would divide by ~0 and make every score
# huge; this floor keeps a degenerate cohort from turning into "deny everything" or worse.
MIN_COHORT_SD = 1e-3


Normalization = Literal["as-norm", "top-norm", "none"]
NORMALIZATIONS: tuple[Normalization, ...] = ("as-norm", "top-norm", "none")


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
    return np.asarray(mean / norm, dtype=np.float32)


class Cohort:
    """Unit embeddings of speakers known not to be on the list, and their top-K statistics.

    ``center``: every embedding is scored after subtracting the cohort's mean embedding (and
    normalising again). Speaker encoders put all voices in one cone (resemblyzer's d-vectors of
    different speakers have a mean cosine of about 0.6); the mean direction says nothing about
    who is speaking, and removing it spreads impostor scores less than target scores.
    """

    def __init__(self, embeddings: np.ndarray, *, top_k: int = DEFAULT_COHORT_TOP_K, center: bool = True) -> None:
        rows = np.asarray(embeddings, dtype=np.float32)
        if rows.ndim != 2 or rows.shape[0] < MIN_COHORT_SIZE:
            raise BlocklistMisconfigured(
                f"the score-normalisation cohort needs at least {MIN_COHORT_SIZE} speakers, "
                f"got {0 if rows.ndim != 2 else rows.shape[0]}"
            )
        if top_k < 2:
            raise BlocklistMisconfigured(f"cohort top_k must be at least 2, got {top_k}")
        self.dimension: int = int(rows.shape[1])
        units = unit_rows(rows, dimension=self.dimension, what="cohort embeddings")
        self.center = center
        self.mean = units.mean(axis=0).astype(np.float32) if center else np.zeros(self.dimension, np.float32)
        self.embeddings = self.project(units, what="cohort embeddings")
        self.top_k = min(top_k, self.embeddings.shape[0])

    def project(self, vectors: np.ndarray, *, what: str = "embeddings") -> np.ndarray:
        """Rows in the space scores are computed in: centred on the cohort mean, unit length."""
        rows = unit_rows(np.atleast_2d(np.asarray(vectors, dtype=np.float32)), dimension=self.dimension, what=what)
        if not self.center:
            return rows
        return unit_rows(rows - self.mean, dimension=self.dimension, what=f"{what} (centred)")

    def statistics(self, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # (n,), (n,)
        """Mean and standard deviation of each (projected) vector's top-K cohort scores."""
        scores = np.atleast_2d(vectors) @ self.embeddings.T
        k = self.top_k
        top = np.partition(scores, scores.shape[1] - k, axis=1)[:, -k:]
        return top.mean(axis=1), np.maximum(top.std(axis=1), MIN_COHORT_SD)


def score_transform(
    normalization: Normalization,
    *,
    entry_mean: np.ndarray,
    entry_sd: np.ndarray,
    probe_mean: np.ndarray | float,
    probe_sd: np.ndarray | float,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-entry ``slope`` and ``intercept`` with normalised = raw * slope + intercept (broadcasts)."""
    if normalization == "as-norm":
        return 0.5 * (1.0 / entry_sd + 1.0 / probe_sd), -0.5 * (entry_mean / entry_sd + probe_mean / probe_sd)
    if normalization == "top-norm":
        return 1.0 / entry_sd + 0.0 * probe_sd, -entry_mean / entry_sd + 0.0 * probe_mean
    if normalization == "none":
        return np.ones_like(entry_sd) + 0.0 * probe_sd, np.zeros_like(entry_mean) + 0.0 * probe_mean
    raise BlocklistMisconfigured(f"unknown score normalisation {normalization!r}")


def normalize_scores(
    raw: np.ndarray | float,
    normalization: Normalization,
    *,
    entry_mean: np.ndarray,
    entry_sd: np.ndarray,
    probe_mean: np.ndarray | float,
    probe_sd: np.ndarray | float,
) -> np.ndarray:
    slope, intercept = score_transform(
        normalization, entry_mean=entry_mean, entry_sd=entry_sd, probe_mean=probe_mean, probe_sd=probe_sd
    )
    return np.asarray(raw * slope + intercept)


def normalized_pair_score(
    cohort: Cohort, normalization: Normalization, *, entry_model: np.ndarray, probe: np.ndarray
) -> tuple[float, float]:
    """Raw (in the cohort's projected space) and normalised score of one entry model against one probe."""
    entry = cohort.project(np.asarray(entry_model).reshape(1, -1), what="entry model")[0]
    vector = cohort.project(np.asarray(probe).reshape(1, -1), what="probe embedding")[0]
    entry_mean, entry_sd = cohort.statistics(entry)
    probe_mean, probe_sd = cohort.statistics(vector)
    raw = float(entry @ vector)
    normalized = normalize_scores(
        raw, normalization, entry_mean=entry_mean, entry_sd=entry_sd, probe_mean=probe_mean, probe_sd=probe_sd
    )
    return raw, float(np.asarray(normalized).reshape(-1)[0])
