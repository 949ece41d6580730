"""Trained back-ends on resemblyzer embeddings, held out like the rest of the benchmark.

WCCN (within-class covariance normalisation) and LDA are trained on the two development groups of
each split (the cohort and the calibrating speakers: every half and every 3 s window of a clip is
one sample of its speaker) and scored on the third group. The figures say whether a trained
projection earns a place in the gateway; with 44 training speakers against 256 dimensions the
within-class covariance needs heavy shrinkage, so the shrinkage is swept.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from bench.blocklist.corpus_embeddings import CorpusEmbeddings
from bench.blocklist.scores import equal_error_rate, splits

Projection = Callable[[np.ndarray], np.ndarray]


def _unit(rows: np.ndarray) -> np.ndarray:
    return np.asarray(rows / np.linalg.norm(rows, axis=-1, keepdims=True))


def _samples(corpus: CorpusEmbeddings, speakers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rows, labels = [], []
    for speaker in speakers:
        for half in range(2):
            for vector in [corpus.whole[speaker, half], *corpus.windows_of(speaker, half)]:
                rows.append(vector)
                labels.append(speaker)
    return np.array(rows), np.array(labels)


def _within_class(rows: np.ndarray, labels: np.ndarray, shrinkage: float) -> np.ndarray:
    covariance = np.zeros((rows.shape[1], rows.shape[1]))
    for label in np.unique(labels):
        own = rows[labels == label]
        centred = own - own.mean(axis=0)
        covariance += centred.T @ centred
    covariance /= rows.shape[0]
    identity = np.trace(covariance) / covariance.shape[0] * np.eye(covariance.shape[0])
    return np.asarray((1 - shrinkage) * covariance + shrinkage * identity)


def centred(corpus: CorpusEmbeddings, dev: np.ndarray) -> Projection:
    mean = _samples(corpus, dev)[0].mean(axis=0)
    return lambda v: _unit(v - mean)


def wccn(shrinkage: float) -> Callable[[CorpusEmbeddings, np.ndarray], Projection]:
    def fit(corpus: CorpusEmbeddings, dev: np.ndarray) -> Projection:
        rows, labels = _samples(corpus, dev)
        mean = rows.mean(axis=0)
        rows = _unit(rows - mean)
        factor = np.linalg.cholesky(np.linalg.inv(_within_class(rows, labels, shrinkage)))
        return lambda v: _unit(_unit(v - mean) @ factor)

    return fit


def lda(dimension: int, shrinkage: float) -> Callable[[CorpusEmbeddings, np.ndarray], Projection]:
    def fit(corpus: CorpusEmbeddings, dev: np.ndarray) -> Projection:
        rows, labels = _samples(corpus, dev)
        mean = rows.mean(axis=0)
        rows = _unit(rows - mean)
        means = np.stack([rows[labels == label].mean(axis=0) for label in np.unique(labels)])
        values, vectors = np.linalg.eigh(_within_class(rows, labels, shrinkage))
        whiten = vectors / np.sqrt(values)
        between = whiten.T @ np.cov(means.T, bias=True) @ whiten
        _, directions = np.linalg.eigh(between)
        projection = whiten @ directions[:, ::-1][:, :dimension]
        return lambda v: _unit(_unit(v - mean) @ projection)

    return fit


def evaluate(corpus: CorpusEmbeddings, fit: Callable[[CorpusEmbeddings, np.ndarray], Projection]) -> dict[str, float]:
    targets, impostors = [], []
    for split in splits(len(corpus.speakers)):
        project = fit(corpus, np.concatenate([split.cohort, split.calibration]))
        same = np.eye(split.report.size, dtype=bool)
        for half in range(2):
            scores = project(corpus.whole[split.report, half]) @ project(corpus.whole[split.report, 1 - half]).T
            targets.append(scores[same])
            impostors.append(scores[~same])
    t, i = np.concatenate(targets), np.concatenate(impostors)
    return {
        "eer": round(equal_error_rate(t, i), 5),
        "own_accepted_at_0_1_percent_false_accepts": round(float(np.mean(t >= np.quantile(i, 0.999))), 5),
    }


def measure(corpus: CorpusEmbeddings) -> list[dict[str, object]]:
    rows = [{"back_end": "centred cosine (development mean)", **evaluate(corpus, centred)}]
    for shrinkage in (0.1, 0.5, 0.8):
        rows.append({"back_end": f"WCCN, shrinkage {shrinkage}", **evaluate(corpus, wccn(shrinkage))})
    for dimension in (20, 40):
        for shrinkage in (0.1, 0.5):
            rows.append(
                {
                    "back_end": f"LDA to {dimension} dims, shrinkage {shrinkage}",
                    **evaluate(corpus, lda(dimension, shrinkage)),
                }
            )
    return rows
