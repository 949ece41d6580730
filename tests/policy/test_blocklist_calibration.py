"""Calibration: thresholds from labelled scores, the probability map, and a file bound to one model."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import norm

from policy.blocklist.calibration import (
    ScoreCalibration,
    TailFit,
    fit_calibration,
    labelled_trial_scores,
    list_rate,
    per_comparison_rate,
)
from policy.blocklist.calibrations import builtin_calibration, calibration_path
from policy.blocklist.matching import Cohort
from policy.errors import BlocklistMisconfigured
from policy.speaker import RESEMBLYZER_WEIGHTS_SHA256, WINDOWED_SUFFIX


def _scores(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(6.0, 1.0, 400), rng.normal(0.0, 1.0, 40_000)


def _fit(**kwargs: object) -> ScoreCalibration:
    targets, impostors = _scores()
    arguments: dict[str, object] = {
        "targets": targets,
        "impostors": impostors,
        "model_id": "model-a",
        "normalization": "as-norm",
        "cohort_top_k": 50,
        "source": "test",
    }
    arguments.update(kwargs)
    return fit_calibration(**arguments)  # type: ignore[arg-type]


def test_deny_threshold_follows_the_impostor_tail_and_list_size() -> None:
    calibration = _fit(list_size=1_000, max_wrongful_denial=0.005)
    per_entry = per_comparison_rate(list_rate=0.005, list_size=1_000)
    # Impostors are standard normal here, so the fitted tail must land on the true quantile.
    assert calibration.deny == pytest.approx(norm.isf(per_entry), abs=0.08)
    assert list_rate(per_comparison=per_entry, list_size=1_000) == pytest.approx(0.005)
    bigger_list = _fit(list_size=100_000, max_wrongful_denial=0.005)
    assert bigger_list.deny > calibration.deny


def test_review_threshold_lets_through_at_most_the_asked_share_of_own_speech() -> None:
    targets, _ = _scores()
    calibration = _fit(max_own_allowed=0.01)
    assert float(np.mean(targets < calibration.review)) <= 0.01
    assert calibration.review <= calibration.deny
    looser = _fit(max_own_allowed=0.10)
    assert looser.review > calibration.review


def test_review_never_above_deny() -> None:
    """A model so good that 99 % of own speech clears the deny threshold holds nothing."""
    rng = np.random.default_rng(1)
    calibration = _fit(targets=rng.normal(40.0, 1.0, 400))
    assert calibration.review == calibration.deny


def test_probability_rises_with_the_score_and_is_even_between_the_classes() -> None:
    rng = np.random.default_rng(3)
    calibration = _fit(targets=rng.normal(3.0, 1.0, 2_000), impostors=rng.normal(0.0, 1.0, 20_000))
    assert calibration.probability(-3.0) < 0.01 < calibration.probability(1.5) < 0.99 < calibration.probability(6.0)
    # Equal spreads: the log-likelihood ratio is 3 s - 4.5, even odds halfway between the means.
    assert calibration.probability(1.5) == pytest.approx(0.5, abs=0.05)
    assert calibration.logistic_slope == pytest.approx(3.0, rel=0.1)
    assert calibration.probability(-1e6) == 0.0


def test_too_few_or_non_finite_trials_refused() -> None:
    targets, impostors = _scores()
    with pytest.raises(BlocklistMisconfigured):
        _fit(targets=targets[:5])
    with pytest.raises(BlocklistMisconfigured):
        _fit(impostors=impostors[:50])
    with pytest.raises(BlocklistMisconfigured):
        _fit(targets=np.append(targets, np.nan))


def test_tail_fit_reads_a_normal_tail() -> None:
    _, impostors = _scores()
    tail = TailFit.upper_half(impostors)
    assert tail.rate(3.0) == pytest.approx(norm.sf(3.0), rel=0.2)
    assert tail.threshold(tail.rate(3.0)) == pytest.approx(3.0)


def test_consent_threshold_follows_the_impostor_tail_at_its_own_rate() -> None:
    """Impostors are standard normal: the consent check accepts a stranger with the asked rate."""
    calibration = _fit(consent_false_match=0.01)
    assert calibration.consent_match == pytest.approx(norm.isf(0.01), abs=0.08)
    stricter = _fit(consent_false_match=0.001)
    assert stricter.consent_match > calibration.consent_match
    with pytest.raises(BlocklistMisconfigured):
        _fit(consent_false_match=0.0)


def test_calibration_without_a_consent_threshold_refused_with_how_to_recalibrate() -> None:
    """A version-1 file (before the consent check was calibrated) must not load with a guessed threshold."""
    data = json.loads(_fit().to_json())
    data.pop("consent_match")
    data["format"] = "clonegate-speaker-calibration/1"
    with pytest.raises(BlocklistMisconfigured, match="blocklist calibrate"):
        ScoreCalibration.from_json(json.dumps(data))


def test_calibration_file_round_trip(tmp_path: Path) -> None:
    calibration = _fit()
    path = tmp_path / "calibration.json"
    path.write_text(calibration.to_json())
    assert ScoreCalibration.read(path) == calibration


@pytest.mark.parametrize(
    "tamper",
    [
        lambda d: d.update(format="something-else"),
        lambda d: d.update(extra=1),
        lambda d: d.pop("deny"),
        lambda d: d.pop("consent_match"),
        lambda d: d.update(consent_match=float("nan")),
        lambda d: d.update(format=["clonegate-speaker-calibration/1"]),
        lambda d: d.update(deny="high"),
        lambda d: d.update(review=d["deny"] + 1),
        lambda d: d.update(cohort_centering="yes"),
        lambda d: d.update(normalization="z-norm"),
        lambda d: d.update(logistic_slope=-1.0),
        lambda d: d.update(model_id=""),
    ],
)
def test_malformed_calibration_file_refused(tamper) -> None:
    data = json.loads(_fit().to_json())
    tamper(data)
    with pytest.raises(BlocklistMisconfigured):
        ScoreCalibration.from_json(json.dumps(data))


def test_unreadable_or_non_json_calibration_refused(tmp_path: Path) -> None:
    with pytest.raises(BlocklistMisconfigured):
        ScoreCalibration.read(tmp_path / "absent.json")
    with pytest.raises(BlocklistMisconfigured):
        ScoreCalibration.from_json("{not json")


def test_calibration_for_another_model_refused() -> None:
    calibration = _fit(model_id="resemblyzer-aaaaaaaaaaaa")
    calibration.require_model("resemblyzer-aaaaaaaaaaaa")
    with pytest.raises(BlocklistMisconfigured, match="calibrate"):
        calibration.require_model("onnx-bbbbbbbbbbbb")
    with pytest.raises(BlocklistMisconfigured):
        replace(calibration, deny=float("inf"))


def test_shipped_calibrations_are_for_the_shipped_model() -> None:
    name = f"resemblyzer-{RESEMBLYZER_WEIGHTS_SHA256[:12]}"
    for model_id in (name, name + WINDOWED_SUFFIX):
        calibration = builtin_calibration(model_id)
        assert calibration is not None and calibration.model_id == model_id
        assert calibration_path(model_id).parent.name == "calibrations"
    assert builtin_calibration("onnx-0123456789ab") is None


def test_labelled_trials_pair_every_recording_with_every_other() -> None:
    rng = np.random.default_rng(2)
    cohort = Cohort(rng.normal(size=(20, 16)), center=False)
    labels = ["a", "a", "a", "b", "b", "c"]
    targets, impostors = labelled_trial_scores(rng.normal(size=(6, 16)), labels, cohort=cohort, normalization="as-norm")
    assert targets.size == 3 * 2 + 2 * 1  # ordered pairs of different recordings, same speaker
    assert impostors.size == 36 - 6 - targets.size
    with pytest.raises(BlocklistMisconfigured):
        labelled_trial_scores(rng.normal(size=(5, 16)), labels, cohort=cohort, normalization="as-norm")
