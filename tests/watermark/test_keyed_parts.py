"""The keyed scheme's parts: error-correcting code and payload authentication."""

from __future__ import annotations

import numpy as np

from watermark.keyed import code
from watermark.keyed.keys import MESSAGE_BITS, open_payload, seal_payload
from watermark.keyed.layout import build_layout

KEY = b"k" * 32


def test_convolutional_code_corrects_noisy_soft_bits():
    rng = np.random.default_rng(7)
    bits = rng.integers(0, 2, MESSAGE_BITS)
    coded = code.encode(bits)
    assert coded.size == code.coded_length(MESSAGE_BITS)
    soft = (1.0 - 2.0 * coded) + rng.normal(0.0, 0.6, coded.size)
    assert (np.sign(soft) != 1.0 - 2.0 * coded).sum() > 0  # the channel really made errors
    assert np.array_equal(code.decode(soft, MESSAGE_BITS), bits)


def test_payload_is_encrypted_and_authenticated():
    bits = seal_payload(KEY, b"\x00\x00\x00\x01")
    assert open_payload(KEY, bits) == b"\x00\x00\x00\x01"
    plain = np.unpackbits(np.frombuffer(b"\x00\x00\x00\x01", dtype=np.uint8))
    assert not np.array_equal(bits[:32], plain)  # the identifier is not readable without the key
    assert open_payload(b"x" * 32, bits) is None


def test_bit_flipped_payload_does_not_verify():
    """Tampering with any single bit of the sealed message breaks the tag."""
    bits = seal_payload(KEY, b"\xde\xad\xbe\xef")
    for i in range(MESSAGE_BITS):
        tampered = bits.copy()
        tampered[i] ^= 1
        assert open_payload(KEY, tampered) is None


def test_layout_depends_on_key():
    a, b = build_layout(KEY), build_layout(b"j" * 32)
    assert not np.array_equal(a.signs, b.signs)
    assert np.array_equal(a.signs, build_layout(KEY).signs)


def test_list_decoder_offers_the_viterbi_message_first_and_recovers_more():
    """With the tag as its check, a list of the most likely messages decodes noisier channels."""
    rng = np.random.default_rng(11)
    plain = listed = 0
    for _ in range(60):
        bits = rng.integers(0, 2, MESSAGE_BITS)
        soft = (1.0 - 2.0 * code.encode(bits)) + rng.normal(0.0, 1.1, code.coded_length(MESSAGE_BITS))
        messages = code.decode_list(soft, MESSAGE_BITS, 16)
        assert np.array_equal(messages[0], code.decode(soft, MESSAGE_BITS))
        assert len({m.tobytes() for m in messages}) == len(messages)  # distinct paths
        plain += np.array_equal(messages[0], bits)
        listed += any(np.array_equal(m, bits) for m in messages)
    assert listed > plain
