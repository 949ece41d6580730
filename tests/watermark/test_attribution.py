"""Short-clip attribution: a clip too short to decode is matched against released outputs, with a
false-attribution bound that holds for unmarked audio, other requests' audio and wrong keys."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from watermark import KeyedScheme
from watermark.keyed import attribution, code
from watermark.keyed.keys import MESSAGE_BITS, open_payload, seal_many, seal_payload

from .conftest import TEST_KEY

REQUEST = bytes.fromhex("000a11ce")
OTHER_REQUEST = bytes.fromhex("000a11cf")  # the next audit identifier: differs in one bit


def decoys(n: int, seed: int = 5) -> list[bytes]:
    rng = np.random.default_rng(seed)
    return [rng.bytes(4) for _ in range(n)]


def test_trellis_moment_generating_function_is_exact():
    """Against every codeword of an 8-bit message, enumerated."""
    rng = np.random.default_rng(3)
    n_bits = 8
    soft = rng.normal(0.0, 1.0, code.coded_length(n_bits))
    signs = np.array([1.0 - 2.0 * code.encode(np.array(bits)) for bits in itertools.product((0, 1), repeat=n_bits)])
    lambdas = np.array([0.05, 0.3, 1.0])
    exact = np.log(np.mean(np.exp(lambdas[:, None] * (signs @ soft)[None, :]), axis=1))
    assert attribution.log_mgf(soft, lambdas, n_bits) == pytest.approx(exact, rel=1e-9)


def test_tail_bound_holds_for_random_codewords():
    rng = np.random.default_rng(4)
    soft = rng.normal(0.0, 1.0, code.coded_length(MESSAGE_BITS)) * rng.uniform(
        0.0, 3.0, code.coded_length(MESSAGE_BITS)
    )
    coded = code.encode_many(rng.integers(0, 2, (200_000, MESSAGE_BITS)))
    values = (1.0 - 2.0 * coded) @ soft
    spread = np.sqrt(np.sum(soft**2))
    for x in (2.0 * spread, 3.0 * spread, 3.5 * spread):
        bound = np.exp(attribution.log_tail_bound(soft, x, MESSAGE_BITS))
        assert np.mean(values >= x) <= bound
        assert bound < 3 * np.exp(-((x / spread) ** 2) / 2)  # and it is not vacuous: about the Gaussian tail


def test_encoder_for_many_messages_matches_the_encoder():
    rng = np.random.default_rng(6)
    bits = rng.integers(0, 2, (20, MESSAGE_BITS))
    assert all(np.array_equal(code.encode(row), coded) for row, coded in zip(bits, code.encode_many(bits), strict=True))


def test_both_sealings_open_and_only_the_current_one_is_embedded():
    for sealing in (1, 2):
        assert open_payload(TEST_KEY, seal_payload(TEST_KEY, REQUEST, sealing=sealing)) == REQUEST
    assert np.array_equal(seal_many(TEST_KEY, [REQUEST])[0], seal_payload(TEST_KEY, REQUEST))
    assert not np.array_equal(seal_payload(TEST_KEY, REQUEST, sealing=1), seal_payload(TEST_KEY, REQUEST))


def test_neighbouring_identifiers_seal_to_unrelated_messages():
    """Under sealing 1, identifiers one apart differ in one bit of the sealed identifier; under the
    current sealing about half of all 64 bits differ, which the attribution bound assumes."""
    first = seal_payload(TEST_KEY, REQUEST, sealing=1)
    second = seal_payload(TEST_KEY, OTHER_REQUEST, sealing=1)
    assert np.sum(first[:32] != second[:32]) == 1
    rows = seal_many(TEST_KEY, [(i).to_bytes(4, "big") for i in range(1, 401)])
    differing = np.sum(rows[1:] != rows[:-1], axis=1)
    assert 28 < np.mean(differing) < 36 and differing.min() > 12


@pytest.fixture(scope="module")
def short_output(english_speech, keyed):
    """A 1.5 s output, marked on its own, as the gateway releases a short utterance."""
    x, sr = english_speech[0]
    host = x[int(0.4 * sr) : int(1.9 * sr)]
    return keyed.embed(host, sample_rate=sr, payload=REQUEST), host, sr


def test_short_output_resolves_to_its_request(short_output, keyed):
    y, _, sr = short_output
    candidates = keyed.candidate_set([*decoys(5_000), REQUEST, OTHER_REQUEST])
    found = keyed.detect(y, sample_rate=sr, candidates=lambda: candidates)
    assert found.payload == REQUEST and found.detected
    assert found.payload_source == "attributed" or found.payload_verified
    assert found.false_attribution_probability is not None and found.false_attribution_probability <= 1e-4


def test_short_output_of_an_unlisted_request_is_not_attributed(short_output, keyed):
    """The request that made the clip is not among the candidates: none may be named."""
    y, _, sr = short_output
    found = keyed.detect(y, sample_rate=sr, candidates=lambda: [*decoys(5_000, seed=9), OTHER_REQUEST])
    assert found.payload is None or found.payload == REQUEST  # decoded from the clip itself, never a candidate
    assert found.payload_source != "attributed"


def test_unmarked_clip_is_not_attributed(short_output, keyed):
    _, host, sr = short_output
    found = keyed.detect(host, sample_rate=sr, candidates=lambda: [*decoys(5_000), REQUEST])
    assert found.payload is None and not found.detected and found.payload_source is None


def test_wrong_key_attributes_nothing(short_output):
    y, _, sr = short_output
    other = KeyedScheme(b"some-other-key-entirely-000000000")
    found = other.detect(y, sample_rate=sr, candidates=lambda: [*decoys(5_000), REQUEST])
    assert found.payload is None and found.payload_source is None


def test_bound_counts_every_candidate(short_output, keyed):
    y, _, sr = short_output
    from watermark.audio import resample
    from watermark.keyed.search import Searcher, chunk_bounds

    signal16 = resample(y, from_rate=sr, to_rate=16_000)
    alignments = Searcher(signal16, layout=keyed._layout, bounds=chunk_bounds(signal16.size)).run(keyed.grid)
    few = keyed.attribute(alignments, [REQUEST, *decoys(9)])
    many = keyed.attribute(alignments, [REQUEST, *decoys(999)])
    assert few.best == many.best == REQUEST
    assert many.false_attribution_probability == pytest.approx(100 * few.false_attribution_probability, rel=1e-6)
