"""Key handling for the keyed scheme: keyed pseudo-random streams and the authenticated payload.

Everything derives from one secret key through HMAC-SHA256 with distinct labels, so the
spreading pattern, the payload encryption stream and the authentication tag are independent
and none can be computed without the key. Streams come from hashlib, not a numpy generator,
so a mark embedded today stays readable after a numpy upgrade.
"""

from __future__ import annotations

import hashlib
import hmac

import numpy as np

from ..errors import InvalidPayload, WatermarkKeyError

MIN_KEY_BYTES = 16
PAYLOAD_BYTES = 4  # the audit identifier
TAG_BYTES = 4  # HMAC-SHA256 truncated: a random or forged payload verifies with probability 2**-32
MESSAGE_BITS = 8 * (PAYLOAD_BYTES + TAG_BYTES)

# Public on purpose: anyone may use it in dev mode, so a mark made with it proves nothing.
DEV_KEY = b"clonegate-development-watermark-key-not-secret"


def check_key(key: bytes) -> bytes:
    if not isinstance(key, (bytes, bytearray)):
        raise WatermarkKeyError("the watermark key must be bytes")
    if len(key) < MIN_KEY_BYTES:
        raise WatermarkKeyError(f"the watermark key has {len(key)} bytes; at least {MIN_KEY_BYTES} are required")
    return bytes(key)


def keyed_bytes(key: bytes, label: str, n_bytes: int) -> bytes:
    """HMAC-SHA256 in counter mode: a deterministic keyed byte stream for ``label``."""
    out = bytearray()
    counter = 0
    while len(out) < n_bytes:
        out += hmac.new(key, f"{label}|{counter}".encode(), hashlib.sha256).digest()
        counter += 1
    return bytes(out[:n_bytes])


def keyed_signs(key: bytes, label: str, shape: tuple[int, ...]) -> np.ndarray:
    """A keyed array of +1/-1 values."""
    n = int(np.prod(shape))
    bits = np.unpackbits(np.frombuffer(keyed_bytes(key, label, (n + 7) // 8), dtype=np.uint8))[:n]
    return (1.0 - 2.0 * bits).reshape(shape)


def keyed_permutation(key: bytes, label: str, n: int) -> np.ndarray:
    ranks = np.frombuffer(keyed_bytes(key, label, 8 * n), dtype=">u8")
    return np.argsort(ranks, kind="stable")


def _tag(key: bytes, identifier: bytes) -> bytes:
    return hmac.new(key, b"payload-tag|" + identifier, hashlib.sha256).digest()[:TAG_BYTES]


def seal_payload(key: bytes, payload: bytes) -> np.ndarray:
    """Encrypt the identifier with a keyed stream, append its tag; returns MESSAGE_BITS bits (0/1)."""
    if not isinstance(payload, (bytes, bytearray)) or len(payload) != PAYLOAD_BYTES:
        raise InvalidPayload(f"the keyed watermark carries exactly {PAYLOAD_BYTES} payload bytes")
    identifier = bytes(payload)
    stream = keyed_bytes(key, "payload-stream", PAYLOAD_BYTES + TAG_BYTES)
    message = identifier + _tag(key, identifier)
    sealed = bytes(m ^ s for m, s in zip(message, stream, strict=True))
    return np.unpackbits(np.frombuffer(sealed, dtype=np.uint8)).astype(np.int64)


def open_payload(key: bytes, bits: np.ndarray) -> bytes | None:
    """Decrypt and authenticate decoded bits; the identifier, or None when the tag does not verify."""
    sealed = np.packbits(np.asarray(bits, dtype=np.uint8)).tobytes()
    stream = keyed_bytes(key, "payload-stream", PAYLOAD_BYTES + TAG_BYTES)
    message = bytes(m ^ s for m, s in zip(sealed, stream, strict=True))
    identifier, tag = message[:PAYLOAD_BYTES], message[PAYLOAD_BYTES:]
    return identifier if hmac.compare_digest(tag, _tag(key, identifier)) else None
