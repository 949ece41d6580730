"""The calibrated same-speaker scorer, one pair at a time: what the consent check asks of the
protected-speaker list's scoring.

Two embeddings are compared exactly as the list compares an entry with a probe: projected into
the cohort's centred space, normalised by their top-K cohort statistics (AS-norm or Top-norm,
as the calibration says), then mapped to P(same speaker) by the calibration's logistic fit. A
raw cosine threshold would mean a different thing for every voice (some sit close to many
others) and for every model; this score means one false-match rate everywhere, and a deployment
that changes models changes it by recalibrating.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from policy.blocklist.calibration import ScoreCalibration
from policy.blocklist.matching import Cohort, normalized_pair_score
from policy.errors import BlocklistMisconfigured


@dataclass(frozen=True)
class PairScore:
    raw: float  # cosine in the cohort's (centred) space
    normalized: float  # the calibrated scale every threshold is on
    probability: float  # P(same speaker) at even prior odds


@dataclass(frozen=True)
class CalibratedScorer:
    """A cohort and the calibration made for it; refuses a cohort built another way."""

    cohort: Cohort
    calibration: ScoreCalibration

    def __post_init__(self) -> None:
        if self.cohort.center != self.calibration.cohort_centering:
            raise BlocklistMisconfigured(
                f"the cohort is {'' if self.cohort.center else 'not '}centred, the calibration expects "
                f"{'' if self.calibration.cohort_centering else 'no '}centring"
            )
        expected_k = min(self.calibration.cohort_top_k, self.cohort.embeddings.shape[0])
        if self.cohort.top_k != expected_k:
            raise BlocklistMisconfigured(
                f"the cohort uses its top {self.cohort.top_k} scores, the calibration its top {expected_k}"
            )

    def pair(self, entry: np.ndarray, probe: np.ndarray) -> PairScore:
        """``entry`` is the side whose identity is claimed (Top-norm uses its statistics only)."""
        raw, normalized = normalized_pair_score(
            self.cohort, self.calibration.normalization, entry_model=entry, probe=probe
        )
        return PairScore(raw=raw, normalized=normalized, probability=self.calibration.probability(normalized))
