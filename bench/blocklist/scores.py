"""Score sets for the blocklist benchmark: per-comparison and list-level, raw and AS-normalised.

Speakers are split three ways per fold so that no speaker is ever its own cohort member:
every third speaker forms the cohort (as the admin-curated cohort would in production); the
rest are the evaluation speakers, each enrolled from the first half of its clip and probed with
the ~3 s pieces of the second half.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bench.blocklist.corpus_embeddings import CorpusEmbeddings
from policy.blocklist.matching import Cohort, as_norm

FOLDS = 3


@dataclass
class FoldScores:
    cohort_speakers: np.ndarray  # indices into corpus.speakers
    eval_speakers: np.ndarray
    probe_rows: np.ndarray  # indices into corpus.probe (probes of eval speakers)
    raw: np.ndarray  # (len(eval_speakers), len(probe_rows))
    normalized: np.ndarray
    same: np.ndarray  # bool, entry speaker == probe speaker


def fold_scores(corpus: CorpusEmbeddings, *, top_k: int) -> list[FoldScores]:
    speakers = np.arange(len(corpus.speakers))
    folds = []
    for fold in range(FOLDS):
        cohort_speakers = speakers[fold::FOLDS]
        eval_speakers = np.setdiff1d(speakers, cohort_speakers)
        cohort = Cohort(corpus.enrol[cohort_speakers], top_k=top_k)
        probe_rows = np.flatnonzero(np.isin(corpus.probe_speaker, eval_speakers))
        entries = corpus.enrol[eval_speakers]
        probes = corpus.probe[probe_rows]
        entry_mean, entry_sd = cohort.statistics(entries)
        probe_mean, probe_sd = cohort.statistics(probes)
        raw = entries @ probes.T
        normalized = as_norm(
            raw,
            entry_mean=entry_mean[:, None],
            entry_sd=entry_sd[:, None],
            probe_mean=probe_mean[None, :],
            probe_sd=probe_sd[None, :],
        )
        same = eval_speakers[:, None] == corpus.probe_speaker[probe_rows][None, :]
        folds.append(FoldScores(cohort_speakers, eval_speakers, probe_rows, raw, normalized, same))
    return folds


def pooled(folds: list[FoldScores], *, normalized: bool) -> tuple[np.ndarray, np.ndarray]:
    """All target and impostor scores of all folds."""
    key = "normalized" if normalized else "raw"
    targets = np.concatenate([getattr(f, key)[f.same] for f in folds])
    impostors = np.concatenate([getattr(f, key)[~f.same] for f in folds])
    return targets, impostors


def far_frr(targets: np.ndarray, impostors: np.ndarray, threshold: float) -> tuple[float, float]:
    return float(np.mean(impostors >= threshold)), float(np.mean(targets < threshold))


def equal_error_rate(targets: np.ndarray, impostors: np.ndarray) -> tuple[float, float]:
    grid = np.unique(np.concatenate([targets, impostors]))
    far = np.array([np.mean(impostors >= t) for t in grid])
    frr = np.array([np.mean(targets < t) for t in grid])
    best = int(np.argmin(np.abs(far - frr)))
    return float((far[best] + frr[best]) / 2), float(grid[best])


def gaussian_tail_threshold(impostors: np.ndarray, *, rate: float) -> float:
    """Threshold with per-comparison FAR ``rate`` under a normal fit of the impostor scores'
    upper half (the empirical set is too small to read rates near 1e-5 directly)."""
    from scipy.stats import norm

    upper = np.sort(impostors)[impostors.size // 2 :]
    # Fit mean/sd so that the upper half's quantiles match a normal's (least squares on a QQ plot).
    probabilities = (np.arange(impostors.size // 2, impostors.size) + 0.5) / impostors.size
    quantiles = norm.ppf(probabilities)
    slope, intercept = np.polyfit(quantiles, upper, 1)
    return float(intercept + slope * norm.isf(rate))


def gaussian_tail_rate(impostors: np.ndarray, *, threshold: float) -> float:
    from scipy.stats import norm

    upper = np.sort(impostors)[impostors.size // 2 :]
    probabilities = (np.arange(impostors.size // 2, impostors.size) + 0.5) / impostors.size
    slope, intercept = np.polyfit(norm.ppf(probabilities), upper, 1)
    return float(norm.sf((threshold - intercept) / slope))


def list_level_false_alarms(
    folds: list[FoldScores], *, threshold: float, list_size: int | None, trials: int, seed: int = 0
) -> tuple[float, int]:
    """Fraction of (list, non-listed probe) pairs whose best normalised score reaches
    ``threshold``. ``list_size=None``: the list is every evaluation speaker but the probe's."""
    rng = np.random.default_rng(seed)
    alarms = total = 0
    for fold in folds:
        probe_speakers = np.asarray([fold.eval_speakers[np.argmax(col)] for col in fold.same.T])
        for column in range(fold.normalized.shape[1]):
            others = np.flatnonzero(fold.eval_speakers != probe_speakers[column])
            if list_size is None:
                lists = [others]
            else:
                lists = [rng.choice(others, size=list_size, replace=False) for _ in range(trials)]
            for members in lists:
                alarms += int(fold.normalized[members, column].max() >= threshold)
                total += 1
    return alarms / total, total


def extrapolated_list_rate(per_comparison: float, *, list_size: int) -> float:
    return float(1.0 - (1.0 - per_comparison) ** list_size)
