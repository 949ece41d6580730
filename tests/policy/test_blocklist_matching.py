"""Score normalisation (AS-norm, Top-norm, cohort centring) and the exact index search, on
embeddings shaped like real d-vectors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from policy.blocklist.index import PREFILTER_MIN_ENTRIES, BlocklistIndex, _Int8Copy
from policy.blocklist.matching import (
    BlocklistThresholds,
    Cohort,
    Decision,
    normalized_pair_score,
    speaker_model,
)
from policy.errors import BlocklistMisconfigured, EmbeddingInvalid

torch.set_num_threads(1)
DIM = 256
THRESHOLDS = BlocklistThresholds(deny=4.7, review=2.1)


def _clustered(rng: np.random.Generator, count: int, *, spread: float = 0.08) -> np.ndarray:
    """Unit vectors around a common positive mean, like resemblyzer's (cosine ~0.6 apart)."""
    mean = np.abs(rng.standard_normal(DIM)).astype(np.float32)
    mean /= np.linalg.norm(mean)
    draws = mean + rng.standard_normal((count, DIM)).astype(np.float32) * spread
    return draws / np.linalg.norm(draws, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def rng_vectors() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    everyone = _clustered(rng, PREFILTER_MIN_ENTRIES + 5_200)
    return everyone[:200], everyone[200:]  # cohort, entries


def _index(cohort: np.ndarray, entries: np.ndarray, *, center: bool = True, **kwargs) -> BlocklistIndex:
    return BlocklistIndex(
        entry_ids=np.arange(100, 100 + len(entries)),
        models=entries,
        cohort=Cohort(cohort, center=center),
        thresholds=THRESHOLDS,
        embedder_name="test",
        **kwargs,
    )


@pytest.mark.parametrize("normalization", ["as-norm", "top-norm", "none"])
@pytest.mark.parametrize("center", [True, False])
def test_int8_prefilter_returns_exactly_the_full_scan_best(rng_vectors, normalization, center) -> None:
    cohort, entries = rng_vectors
    index = _index(cohort, entries, center=center, normalization=normalization)
    assert index._int8 is not None, "a list this long must use the int8 prefilter"
    rng = np.random.default_rng(1)
    probes = [
        entries[i] + rng.standard_normal(DIM).astype(np.float32) * 0.03 for i in rng.integers(0, len(entries), 25)
    ]
    probes += list(_clustered(np.random.default_rng(2), 25))
    for probe in probes:
        decision = index.check(probe)
        raw, normalized = index.scores(probe)
        best = int(np.argmax(normalized))
        assert decision.entry_id == int(index.entry_ids[best])
        assert decision.raw_score == pytest.approx(float(raw[best]), abs=1e-5)
        assert decision.normalized_score == pytest.approx(float(normalized[best]), rel=1e-4, abs=1e-3)


def test_exempt_entry_is_skipped_and_only_that_entry(rng_vectors) -> None:
    cohort, entries = rng_vectors
    small = _index(cohort, entries[:50])
    probe = entries[7]
    assert small.check(probe).entry_id == 107
    assert small.check(probe).decision is Decision.DENY
    exempted = small.check(probe, exempt_entry_ids={107})
    assert exempted.entry_id != 107
    assert exempted.decision is not Decision.DENY
    large = _index(cohort, entries)
    assert large.check(probe, exempt_entry_ids={107}).entry_id != 107


def test_empty_list_allows(rng_vectors) -> None:
    cohort, _ = rng_vectors
    decision = _index(cohort, np.zeros((0, DIM), dtype=np.float32)).check(cohort[0])
    assert decision.decision is Decision.ALLOW and decision.entry_id is None


def test_empty_cohort_fails_closed(rng_vectors) -> None:
    with pytest.raises(BlocklistMisconfigured):
        Cohort(np.zeros((0, DIM), dtype=np.float32))
    with pytest.raises(BlocklistMisconfigured):
        BlocklistIndex(
            entry_ids=[1], models=rng_vectors[1][:1], cohort=None, thresholds=THRESHOLDS, embedder_name="test"
        )


@pytest.mark.parametrize("deny, review", [(None, 2.0), (4.0, float("nan")), (2.0, 3.0)])
def test_missing_or_inverted_thresholds_fail_closed(deny, review) -> None:
    with pytest.raises(BlocklistMisconfigured):
        BlocklistThresholds(deny=deny, review=review)


def test_missing_thresholds_refused_by_index(rng_vectors) -> None:
    cohort, entries = rng_vectors
    with pytest.raises(BlocklistMisconfigured):
        BlocklistIndex(entry_ids=[1], models=entries[:1], cohort=Cohort(cohort), thresholds=None, embedder_name="x")


def test_probe_of_wrong_dimension_or_nan_refused(rng_vectors) -> None:
    cohort, entries = rng_vectors
    index = _index(cohort, entries[:10])
    with pytest.raises(EmbeddingInvalid):
        index.check(np.ones(DIM + 1, dtype=np.float32))
    with pytest.raises(EmbeddingInvalid):
        index.check(np.full(DIM, np.nan, dtype=np.float32))


def test_normalisation_is_symmetric_and_uses_top_k_cohort() -> None:
    """AS-norm scores the pair the same whichever side is enrolled; the statistics come from the
    K most similar cohort speakers only, so far-away cohort members cannot dilute them."""
    rng = np.random.default_rng(3)
    population = _clustered(rng, 300)
    cohort = Cohort(population[:200], top_k=10, center=False)
    first, second = population[250], population[251]

    def score(entry: np.ndarray, probe: np.ndarray) -> float:
        return normalized_pair_score(cohort, "as-norm", entry_model=entry, probe=probe)[1]

    assert score(first, second) == pytest.approx(score(second, first), rel=1e-5)
    top = np.sort(population[:200] @ first)[-10:]
    mean, sd = cohort.statistics(first)
    assert mean[0] == pytest.approx(top.mean(), rel=1e-5)
    assert sd[0] == pytest.approx(top.std(), rel=1e-4)
    expected = 0.5 * (
        (first @ second - mean[0]) / sd[0]
        + (first @ second - cohort.statistics(second)[0][0]) / cohort.statistics(second)[1][0]
    )
    assert score(first, second) == pytest.approx(float(expected), rel=1e-4)


def test_top_norm_uses_the_entry_side_only() -> None:
    rng = np.random.default_rng(5)
    population = _clustered(rng, 300)
    cohort = Cohort(population[:200], top_k=10, center=False)
    entry, probe = population[250], population[251]
    mean, sd = cohort.statistics(entry)
    raw, normalized = normalized_pair_score(cohort, "top-norm", entry_model=entry, probe=probe)
    assert normalized == pytest.approx(float((raw - mean[0]) / sd[0]), rel=1e-4)
    # Not symmetric: the probe's own neighbourhood plays no part.
    assert normalized != pytest.approx(normalized_pair_score(cohort, "top-norm", entry_model=probe, probe=entry)[1])


def test_no_normalisation_scores_the_centred_cosine() -> None:
    rng = np.random.default_rng(8)
    population = _clustered(rng, 300)
    cohort = Cohort(population[:200], top_k=10)
    entry, probe = population[250], population[251]
    raw, normalized = normalized_pair_score(cohort, "none", entry_model=entry, probe=probe)
    assert normalized == pytest.approx(raw, abs=1e-6)
    assert raw == pytest.approx(float(cohort.project(entry)[0] @ cohort.project(probe)[0]), abs=1e-6)


def test_centring_removes_the_common_direction() -> None:
    """Voices that share only the population's mean direction stop looking alike once the
    cohort mean is taken out; the same voice still does."""
    rng = np.random.default_rng(6)
    population = _clustered(rng, 260, spread=0.04)
    centred = Cohort(population[:200], center=True)
    plain = Cohort(population[:200], center=False)
    first, second = population[250], population[251]
    assert float(first @ second) > 0.5
    assert float(centred.project(first)[0] @ centred.project(second)[0]) < 0.3
    same = first + rng.standard_normal(DIM).astype(np.float32) * 0.01
    assert float(centred.project(first)[0] @ centred.project(same)[0]) > 0.8
    assert np.allclose(plain.project(first)[0], first / np.linalg.norm(first), atol=1e-6)


def test_unknown_normalisation_refused(rng_vectors) -> None:
    cohort, entries = rng_vectors
    with pytest.raises(BlocklistMisconfigured):
        _index(cohort, entries[:5], normalization="z-norm")


def test_speaker_model_averages_samples() -> None:
    rng = np.random.default_rng(4)
    samples = _clustered(rng, 3)
    model = speaker_model(samples)
    assert model.shape == (DIM,) and abs(float(np.linalg.norm(model)) - 1) < 1e-5
    pairwise = samples @ samples.T
    closest_pair = float(pairwise[~np.eye(3, dtype=bool)].max())
    # The mean is closer to every sample than any two samples are to each other.
    assert all(float(model @ s) > closest_pair for s in samples)
    with pytest.raises(EmbeddingInvalid):
        speaker_model(np.zeros((0, DIM)))


def test_int8_kernel_is_exact_on_full_range_codes() -> None:
    """The product the prefilter's bound rests on, checked against integer arithmetic on probes
    and entries whose codes use the whole range (where a saturating kernel clips)."""
    rng = np.random.default_rng(11)
    entries = np.abs(rng.standard_normal((300, DIM))).astype(np.float32)
    copy = _Int8Copy.build(entries / np.linalg.norm(entries, axis=1, keepdims=True))
    assert copy is not None
    probe = np.ones(DIM, np.float32) / np.sqrt(DIM)  # every probe code at the maximum
    approx, bound = copy.approximate(probe)
    exact = entries @ probe / np.linalg.norm(entries, axis=1)
    assert np.all(np.abs(exact - approx) <= bound)


def test_int8_prefilter_finds_the_best_entry_when_every_product_is_large() -> None:
    """Non-negative d-vectors (resemblyzer's are) without centring: every code pair is large and
    of one sign, the case in which a clipping kernel under-scores the true best entry."""
    rng = np.random.default_rng(12)
    everyone = np.abs(rng.standard_normal((PREFILTER_MIN_ENTRIES + 300, DIM))).astype(np.float32)
    everyone /= np.linalg.norm(everyone, axis=1, keepdims=True)
    index = _index(everyone[:100], everyone[100:], center=False)
    assert index._int8 is not None
    for target in rng.integers(0, index.size, 10):
        probe = index.models[target] + rng.standard_normal(DIM).astype(np.float32) * 0.01
        _, normalized = index.scores(probe)
        assert index.check(probe).entry_id == int(index.entry_ids[int(np.argmax(normalized))])
