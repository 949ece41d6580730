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
import numpy.typing as npt

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
    return hmac.digest(key, b"payload-tag|" + identifier, "sha256")[:TAG_BYTES]


def _mask(key: bytes, tag: bytes) -> bytes:
    return hmac.digest(key, b"payload-mask|" + tag, "sha256")[:PAYLOAD_BYTES]


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


# Sealing 1 (outputs released before warp search): identifier and tag XOR-ed with one keyed
# stream. Two identifiers then differ, in the sealed message, exactly where they differ
# themselves, so another request's coded bits are not random relative to this one's.
# Sealing 2 (embedded now): the identifier is masked by a keyed function of its own tag, so the
# sealed message of any other identifier is uniformly random given this one's (the HMAC
# modelled as a random function). Short-clip attribution rests on that (see attribution.py).
SEALINGS = (2, 1)
CURRENT_SEALING = 2


def _stream(key: bytes) -> bytes:
    return keyed_bytes(key, "payload-stream", PAYLOAD_BYTES + TAG_BYTES)


def _sealed_bytes(key: bytes, identifier: bytes, sealing: int, stream: bytes) -> bytes:
    tag = _tag(key, identifier)
    head = identifier if sealing == 1 else _xor(identifier, _mask(key, tag))
    return _xor(head + tag, stream)


def _check_payload(payload: bytes) -> bytes:
    if not isinstance(payload, (bytes, bytearray)) or len(payload) != PAYLOAD_BYTES:
        raise InvalidPayload(f"the keyed watermark carries exactly {PAYLOAD_BYTES} payload bytes")
    return bytes(payload)


def seal_payload(key: bytes, payload: bytes, *, sealing: int = CURRENT_SEALING) -> npt.NDArray[np.int64]:
    """Encrypt and tag the identifier; returns MESSAGE_BITS bits (0/1)."""
    sealed = _sealed_bytes(key, _check_payload(payload), sealing, _stream(key))
    return np.unpackbits(np.frombuffer(sealed, dtype=np.uint8)).astype(np.int64)


def seal_many(key: bytes, payloads: list[bytes]) -> npt.NDArray[np.uint8]:
    """Current-sealing message bits (N, MESSAGE_BITS) of many identifiers (candidates for attribution)."""
    identifiers = [_check_payload(p) for p in payloads]
    tags = [hmac.digest(key, b"payload-tag|" + i, "sha256")[:TAG_BYTES] for i in identifiers]
    masks = [hmac.digest(key, b"payload-mask|" + t, "sha256")[:PAYLOAD_BYTES] for t in tags]

    def rows(chunks: list[bytes], width: int) -> npt.NDArray[np.uint8]:
        return np.frombuffer(b"".join(chunks), dtype=np.uint8).reshape(len(chunks), width)

    head = rows(identifiers, PAYLOAD_BYTES) ^ rows(masks, PAYLOAD_BYTES)
    message = np.concatenate([head, rows(tags, TAG_BYTES)], axis=1)
    sealed = message ^ np.frombuffer(_stream(key), dtype=np.uint8)[None, :]
    return np.unpackbits(sealed, axis=1)


def open_payload(key: bytes, bits: npt.NDArray[np.integer]) -> bytes | None:
    """Decrypt and authenticate decoded bits under every sealing; the identifier, or None.

    Each sealing is one opening: a random message verifies with probability 2**-32 per opening,
    so one decoded message costs ``len(SEALINGS)`` in the forgery bound.
    """
    sealed = np.packbits(np.asarray(bits, dtype=np.uint8)).tobytes()
    message = _xor(sealed, _stream(key))
    head, tag = message[:PAYLOAD_BYTES], message[PAYLOAD_BYTES:]
    for sealing in SEALINGS:
        identifier = head if sealing == 1 else _xor(head, _mask(key, tag))
        if hmac.compare_digest(tag, _tag(key, identifier)):
            return identifier
    return None
