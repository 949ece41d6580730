"""Score sets for the blocklist benchmark, calibrated on one group of speakers, reported on another.

The 67 speakers fall into three fixed groups (every third speaker). Each of the six orderings of
the groups gives one split: the first group is the normalisation cohort (as an administrator's
curated cohort would be), the second calibrates (``fit_calibration``: thresholds and the
probability map), the third is reported on. No speaker is ever scored with a calibration or a
cohort it took part in, so the figures are held-out figures, and every group is reported on
twice, under two different calibrations.

Within a group every speaker is enrolled from one half of its clip and probed with the other
half, both ways round: targets are (entry, its own other half), impostors every other pair.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Literal

import numpy as np

from bench.blocklist.corpus_embeddings import CorpusEmbeddings
from policy.blocklist.calibration import ScoreCalibration, TailFit, fit_calibration, list_rate
from policy.blocklist.matching import Cohort, Normalization, normalize_scores
from policy.speaker import fuse_embeddings

GROUPS = 3
Evidence = Literal["whole", "fused"]


@dataclass(frozen=True)
class Split:
    cohort: np.ndarray
    calibration: np.ndarray
    report: np.ndarray


@dataclass
class GroupScores:
    """Scores of one group of speakers: ``normalized[h, i, j]`` is entry i (enrolled from half h)
    against the probe of speaker j (its other half); ``raw`` the plain cosine of the same pair."""

    speakers: np.ndarray
    raw: np.ndarray
    normalized: np.ndarray

    @property
    def same(self) -> np.ndarray:
        return np.broadcast_to(np.eye(self.speakers.size, dtype=bool), self.raw.shape)

    def targets(self, *, normalized: bool = True) -> np.ndarray:
        return (self.normalized if normalized else self.raw)[self.same]

    def impostors(self, *, normalized: bool = True) -> np.ndarray:
        return (self.normalized if normalized else self.raw)[~self.same]


def splits(speaker_count: int) -> list[Split]:
    groups = [np.arange(speaker_count)[g::GROUPS] for g in range(GROUPS)]
    return [Split(groups[a], groups[b], groups[c]) for a, b, c in itertools.permutations(range(GROUPS))]


def evidence(corpus: CorpusEmbeddings, kind: Evidence) -> np.ndarray:
    """(S, 2, d): each half's embedding, whole or fused with its windows (as the gateway does)."""
    if kind == "whole":
        return corpus.whole
    fused = np.empty_like(corpus.whole)
    for speaker in range(len(corpus.speakers)):
        for half in range(2):
            fused[speaker, half] = fuse_embeddings([corpus.whole[speaker, half], *corpus.windows_of(speaker, half)])
    return fused


def cohort_of(vectors: np.ndarray, speakers: np.ndarray, *, top_k: int, center: bool = True) -> Cohort:
    """One vector per cohort speaker: the fusion of both halves of its clip."""
    return Cohort(np.stack([fuse_embeddings(list(vectors[s])) for s in speakers]), top_k=top_k, center=center)


def group_scores(
    vectors: np.ndarray, speakers: np.ndarray, *, cohort: Cohort, normalization: Normalization
) -> GroupScores:
    raw, normalized = [], []
    for half in range(2):
        entries, probes = cohort.project(vectors[speakers, half]), cohort.project(vectors[speakers, 1 - half])
        entry_mean, entry_sd = cohort.statistics(entries)
        probe_mean, probe_sd = cohort.statistics(probes)
        scores = entries @ probes.T
        raw.append(vectors[speakers, half] @ vectors[speakers, 1 - half].T)  # plain cosine, for comparison
        normalized.append(
            normalize_scores(
                scores,
                normalization,
                entry_mean=entry_mean[:, None],
                entry_sd=entry_sd[:, None],
                probe_mean=probe_mean[None, :],
                probe_sd=probe_sd[None, :],
            )
        )
    return GroupScores(speakers=speakers, raw=np.stack(raw), normalized=np.stack(normalized))


@dataclass
class SplitResult:
    split: Split
    calibration: ScoreCalibration
    calibrating: GroupScores
    report: GroupScores


def run_splits(
    corpus: CorpusEmbeddings,
    *,
    kind: Evidence,
    normalization: Normalization,
    top_k: int,
    list_size: int,
    max_wrongful_denial: float,
    max_own_allowed: float,
    center: bool = True,
) -> list[SplitResult]:
    vectors = evidence(corpus, kind)
    results = []
    for split in splits(len(corpus.speakers)):
        cohort = cohort_of(vectors, split.cohort, top_k=top_k, center=center)
        calibrating = group_scores(vectors, split.calibration, cohort=cohort, normalization=normalization)
        report = group_scores(vectors, split.report, cohort=cohort, normalization=normalization)
        calibration = fit_calibration(
            targets=calibrating.targets(),
            impostors=calibrating.impostors(),
            model_id=corpus.embedder_name,
            normalization=normalization,
            cohort_top_k=top_k,
            cohort_centering=center,
            list_size=list_size,
            max_wrongful_denial=max_wrongful_denial,
            max_own_allowed=max_own_allowed,
            source="bench",
        )
        results.append(SplitResult(split, calibration, calibrating, report))
    return results


def equal_error_rate(targets: np.ndarray, impostors: np.ndarray) -> float:
    grid = np.unique(np.concatenate([targets, impostors]))
    far = np.array([np.mean(impostors >= t) for t in grid])
    frr = np.array([np.mean(targets < t) for t in grid])
    best = int(np.argmin(np.abs(far - frr)))
    return float((far[best] + frr[best]) / 2)


def list_outcomes(
    scores: GroupScores, calibration: ScoreCalibration, *, sizes: tuple[int, ...], trials: int = 50, seed: int = 0
) -> dict[str, dict[str, float]]:
    """Innocent requests against lists of ``sizes`` entries: the fraction denied and held.

    Lists up to the group's size are drawn from the group's other speakers and counted; larger
    lists are simulated from the impostor scores: the per-comparison rate is the larger of the
    counted one and the upper-tail normal fit's, and a list of N gives 1 - (1 - p)^N.
    """
    rng = np.random.default_rng(seed)
    impostors = scores.impostors()
    tail = TailFit.upper_half(impostors)
    out = {}
    count = scores.speakers.size
    for size in sizes:
        if size < count:
            denied = held = total = 0
            for half in range(2):
                for probe in range(count):
                    others = np.delete(np.arange(count), probe)
                    for _ in range(trials):
                        best = float(scores.normalized[half, rng.choice(others, size=size, replace=False), probe].max())
                        denied += best >= calibration.deny
                        held += calibration.review <= best < calibration.deny
                        total += 1
            out[str(size)] = {"denied": denied / total, "held": held / total, "simulated": False}
            continue
        rates = {}
        for label, threshold in (("deny", calibration.deny), ("review", calibration.review)):
            rates[label] = max(float(np.mean(impostors >= threshold)), tail.rate(threshold))
        denied = list_rate(per_comparison=rates["deny"], list_size=size)
        reached = list_rate(per_comparison=rates["review"], list_size=size)
        out[str(size)] = {"denied": denied, "held": max(0.0, reached - denied), "simulated": True}
    return out
