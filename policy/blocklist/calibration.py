"""Calibration: normalised scores to "same speaker" probabilities and to deny / review thresholds.

A calibration belongs to one speaker model (``model_id`` is the embedder's name, which carries
its weights' sha256): a deployment that changes models has to recalibrate, and the gateway
refuses a calibration made for another model. ``fit_calibration`` derives it from labelled
same-speaker (target) and different-speaker (impostor) scores:

- **deny** where the impostor scores' fitted upper tail gives the per-comparison false-alarm
  rate ``deny_far``. With a list of N entries a voice on none of them is wrongly denied with
  probability at most ``1 - (1 - deny_far)^N``, so ``deny_far`` follows from the list size the
  operator plans for and the wrongful-denial rate they accept (defaults: 0.5 % at 1,000 entries).
- **review** at the score that all but ``max_own_allowed`` of a protected speaker's own speech
  reaches (default 1 %), and never above deny: the band that is held for a person is only as
  wide as the model's overlap of targets and impostors forces it to be.
- **consent match** at the score that a different speaker reaches with per-comparison rate
  ``consent_false_match`` (default 1 %, the impostor tail again): the consent check accepts a
  reference as the consent speaker from this score on. It uses the same scorer and cohort as the
  list, so it is as model-specific as the list's thresholds and moves with a recalibration.
- **P(same speaker)**: a logistic fit of the label on the score (balanced classes, i.e. a 50 %
  prior), reported with every decision; the decision itself uses the thresholds above, whose
  meaning does not depend on a prior.

Rates below about one over the number of impostor trials cannot be counted, so the tail is a
normal fit to the upper half of the impostor scores (least squares on their QQ plot).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy.stats import norm

from policy.blocklist.matching import NORMALIZATIONS, BlocklistThresholds, Cohort, Normalization, normalize_scores
from policy.errors import BlocklistMisconfigured

DEFAULT_LIST_SIZE = 1_000
DEFAULT_MAX_WRONGFUL_DENIAL = 0.005
DEFAULT_MAX_OWN_ALLOWED = 0.01
# The consent check's operating point before it was calibrated (docs/benchmarks/consent.md: raw
# cosine rejecting 99 % of pairs of different real speakers), now on the calibrated scale.
DEFAULT_CONSENT_FALSE_MATCH = 0.01
MIN_TARGET_TRIALS = 20
MIN_IMPOSTOR_TRIALS = 200
FORMAT = "clonegate-speaker-calibration/2"
# Version 1 had no consent threshold; its files are refused with a pointer to recalibrate.
_FORMERLY = {"clonegate-speaker-calibration/1": "it has no consent threshold"}


@dataclass(frozen=True)
class ScoreCalibration:
    """Thresholds and the probability map of one speaker model under one normalisation."""

    model_id: str
    normalization: Normalization
    cohort_top_k: int
    cohort_centering: bool
    deny: float
    review: float
    consent_match: float
    logistic_slope: float
    logistic_intercept: float
    source: str

    def __post_init__(self) -> None:
        if self.normalization not in NORMALIZATIONS:
            raise BlocklistMisconfigured(f"unknown score normalisation {self.normalization!r}")
        if not self.model_id:
            raise BlocklistMisconfigured("a calibration must name the speaker model it was made for")
        if self.cohort_top_k < 2:
            raise BlocklistMisconfigured(f"cohort top-K must be at least 2, got {self.cohort_top_k}")
        for label in ("logistic_slope", "logistic_intercept", "consent_match"):
            if not math.isfinite(getattr(self, label)):
                raise BlocklistMisconfigured(f"calibration {label} must be finite")
        if self.logistic_slope <= 0:
            raise BlocklistMisconfigured("calibration slope must be positive: higher scores mean the same speaker")
        BlocklistThresholds(deny=self.deny, review=self.review)  # validates both

    @property
    def thresholds(self) -> BlocklistThresholds:
        return BlocklistThresholds(deny=self.deny, review=self.review)

    def probability(self, score: float) -> float:
        """P(same speaker | normalised score) at even prior odds."""
        z = self.logistic_slope * float(score) + self.logistic_intercept
        return float(1.0 / (1.0 + math.exp(-z))) if z > -700 else 0.0

    def require_model(self, model_id: str) -> None:
        if model_id != self.model_id:
            raise BlocklistMisconfigured(
                f"the speaker calibration was made for {self.model_id}, the configured model is {model_id}: "
                "run `clonegate blocklist calibrate` for this model"
            )

    def to_json(self) -> str:
        return json.dumps({"format": FORMAT, **asdict(self)}, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> ScoreCalibration:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise BlocklistMisconfigured(f"speaker calibration is not JSON: {exc}") from exc
        found = data.pop("format", None) if isinstance(data, dict) else None
        if isinstance(found, str) and found in _FORMERLY:
            raise BlocklistMisconfigured(
                f"speaker calibration is a {found} document ({_FORMERLY[found]}): "
                "run `clonegate blocklist calibrate` again"
            )
        if not isinstance(data, dict) or found != FORMAT:
            raise BlocklistMisconfigured(f"speaker calibration is not a {FORMAT} document")
        expected = set(cls.__dataclass_fields__)
        if set(data) != expected:
            raise BlocklistMisconfigured(f"speaker calibration fields {sorted(data)} differ from {sorted(expected)}")
        try:
            return cls(
                model_id=str(data["model_id"]),
                normalization=data["normalization"],
                cohort_top_k=int(data["cohort_top_k"]),
                cohort_centering=_boolean(data["cohort_centering"]),
                deny=float(data["deny"]),
                review=float(data["review"]),
                consent_match=float(data["consent_match"]),
                logistic_slope=float(data["logistic_slope"]),
                logistic_intercept=float(data["logistic_intercept"]),
                source=str(data["source"]),
            )
        except (TypeError, ValueError) as exc:
            raise BlocklistMisconfigured(f"speaker calibration has a malformed value: {exc}") from exc

    @classmethod
    def read(cls, path: Path) -> ScoreCalibration:
        try:
            return cls.from_json(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise BlocklistMisconfigured(f"cannot read speaker calibration {path}: {exc}") from exc


def _boolean(value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"expected true or false, got {value!r}")
    return value


@dataclass(frozen=True)
class TailFit:
    """A normal fit to the upper half of a score set: P(score >= t) = sf((t - loc) / scale)."""

    loc: float
    scale: float

    @classmethod
    def upper_half(cls, scores: np.ndarray) -> TailFit:
        ordered = np.sort(np.asarray(scores, dtype=np.float64))
        half = ordered.size // 2
        probabilities = (np.arange(half, ordered.size) + 0.5) / ordered.size
        slope, intercept = np.polyfit(norm.ppf(probabilities), ordered[half:], 1)
        if not slope > 0:
            raise BlocklistMisconfigured("impostor scores have no spread to fit a tail to")
        return cls(loc=float(intercept), scale=float(slope))

    def rate(self, threshold: float) -> float:
        return float(norm.sf((threshold - self.loc) / self.scale))

    def threshold(self, rate: float) -> float:
        return float(self.loc + self.scale * norm.isf(rate))


def per_comparison_rate(*, list_rate: float, list_size: int) -> float:
    """The per-entry rate p with 1 - (1 - p)^N = list_rate (independent comparisons, which
    over-states list-level rates when a probe's scores against different entries correlate)."""
    if not 0 < list_rate < 1 or list_size < 1:
        raise BlocklistMisconfigured("list rate must be in (0, 1) and list size at least 1")
    return float(-math.expm1(math.log1p(-list_rate) / list_size))


def list_rate(*, per_comparison: float, list_size: int) -> float:
    return float(-math.expm1(list_size * math.log1p(-min(per_comparison, 1 - 1e-15))))


def logistic_fit(targets: np.ndarray, impostors: np.ndarray, *, iterations: int = 50) -> tuple[float, float]:
    """Slope and intercept of P(target | s) = sigmoid(a s + b), classes weighted equally (Newton)."""
    scores = np.concatenate([targets, impostors]).astype(np.float64)
    labels = np.concatenate([np.ones(targets.size), np.zeros(impostors.size)])
    weights = np.where(labels == 1, 0.5 / targets.size, 0.5 / impostors.size)
    centre, spread = float(scores.mean()), float(scores.std()) or 1.0
    x = (scores - centre) / spread
    a, b = 1.0, 0.0
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-(a * x + b)))
        w = weights * p * (1 - p) + 1e-12
        grad = np.array([np.sum(weights * (p - labels) * x), np.sum(weights * (p - labels))])
        hess = np.array([[np.sum(w * x * x), np.sum(w * x)], [np.sum(w * x), np.sum(w)]])
        # A small ridge keeps separable data (a perfect model on a small set) from diverging.
        step = np.linalg.solve(hess + 1e-6 * np.eye(2), grad + 1e-6 * np.array([a, b]))
        a, b = a - float(step[0]), b - float(step[1])
        if float(np.abs(step).max()) < 1e-10:
            break
    return a / spread, b - a * centre / spread


def fit_calibration(
    *,
    targets: np.ndarray,
    impostors: np.ndarray,
    model_id: str,
    normalization: Normalization,
    cohort_top_k: int,
    cohort_centering: bool = True,
    list_size: int = DEFAULT_LIST_SIZE,
    max_wrongful_denial: float = DEFAULT_MAX_WRONGFUL_DENIAL,
    max_own_allowed: float = DEFAULT_MAX_OWN_ALLOWED,
    consent_false_match: float = DEFAULT_CONSENT_FALSE_MATCH,
    source: str,
) -> ScoreCalibration:
    """Thresholds and probability map from labelled normalised scores (see the module doc)."""
    targets = np.asarray(targets, dtype=np.float64).reshape(-1)
    impostors = np.asarray(impostors, dtype=np.float64).reshape(-1)
    if targets.size < MIN_TARGET_TRIALS or impostors.size < MIN_IMPOSTOR_TRIALS:
        raise BlocklistMisconfigured(
            f"calibration needs at least {MIN_TARGET_TRIALS} same-speaker and {MIN_IMPOSTOR_TRIALS} "
            f"different-speaker trials, got {targets.size} and {impostors.size}"
        )
    if not (np.all(np.isfinite(targets)) and np.all(np.isfinite(impostors))):
        raise BlocklistMisconfigured("calibration scores must be finite")
    if not 0 < max_own_allowed < 0.5:
        raise BlocklistMisconfigured("max_own_allowed must be in (0, 0.5)")
    if not 0 < consent_false_match < 0.5:
        raise BlocklistMisconfigured("consent_false_match must be in (0, 0.5)")
    tail = TailFit.upper_half(impostors)
    deny = tail.threshold(per_comparison_rate(list_rate=max_wrongful_denial, list_size=list_size))
    # The lower of the counted quantile and a normal fit's: on a few dozen target trials the
    # counted 1 % point is one or two scores, and the review band should err towards holding.
    fitted_low = float(np.mean(targets) + np.std(targets) * norm.ppf(max_own_allowed))
    review = min(float(np.quantile(targets, max_own_allowed)), fitted_low, deny)
    slope, intercept = logistic_fit(targets, impostors)
    return ScoreCalibration(
        model_id=model_id,
        normalization=normalization,
        cohort_top_k=cohort_top_k,
        cohort_centering=cohort_centering,
        deny=round(deny, 4),
        review=round(review, 4),
        consent_match=round(tail.threshold(consent_false_match), 4),
        logistic_slope=round(slope, 6),
        logistic_intercept=round(intercept, 6),
        source=source,
    )


def labelled_trial_scores(
    embeddings: np.ndarray, labels: list[str], *, cohort: Cohort, normalization: Normalization
) -> tuple[np.ndarray, np.ndarray]:
    """Normalised target and impostor scores of every ordered pair of different recordings:
    each recording in turn is an entry (enrolled from it alone) and every other one a probe."""
    rows = cohort.project(np.asarray(embeddings, dtype=np.float32), what="labelled embeddings")
    if rows.shape[0] != len(labels):
        raise BlocklistMisconfigured("one label per embedding is needed")
    names = np.asarray(labels)
    mean, sd = cohort.statistics(rows)
    normalized = normalize_scores(
        rows @ rows.T,
        normalization,
        entry_mean=mean[:, None],
        entry_sd=sd[:, None],
        probe_mean=mean[None, :],
        probe_sd=sd[None, :],
    )
    same = names[:, None] == names[None, :]
    other_recording = ~np.eye(names.size, dtype=bool)
    return normalized[same & other_recording], normalized[~same]
