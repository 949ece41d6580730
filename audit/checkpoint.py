"""C2SP tlog-checkpoint bodies inside C2SP signed notes, signed with Ed25519.

A checkpoint body is three lines: the log origin, the tree size in decimal, the base64 root
hash. The signed note is ``body + "\\n" + "— <key name> <base64(key id || signature)>\\n"``.
The key id is the first four bytes of SHA-256(key name || "\\n" || 0x01 || public key), 0x01
being the Ed25519 signature type. Keys use the Go ``sumdb/note`` text encodings:
verifier ``<name>+<hex key id>+<base64(0x01 || public key)>`` and signer
``PRIVATE+KEY+<name>+<hex key id>+<base64(0x01 || seed)>``, so third-party tools can check our
checkpoints.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from audit.errors import (
    CheckpointSignatureInvalid,
    ConsistencyProofInvalid,
    ForkedCheckpoint,
    MalformedCheckpoint,
    SigningKeyError,
    TruncatedLog,
)
from audit.merkle import HASH_SIZE, verify_consistency

ED25519_TYPE = b"\x01"
_EM_DASH = "\u2014"
_KEY_NAME = re.compile(r"[^\s+]{1,200}")
_ORIGIN = re.compile(r"[^\s\u2014][^\n]{0,254}")
MAX_NOTE_BYTES = 1 << 16


def key_id(name: str, public_key: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + ED25519_TYPE + public_key).digest()[:4]


def _b64decode(text: str, what: str, error: type[Exception]) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise error(f"{what} is not valid base64") from exc


@dataclass(frozen=True)
class VerifierKey:
    """The public half: what is published at the endpoint and in the docs."""

    name: str
    public_key: bytes

    @property
    def key_id(self) -> bytes:
        return key_id(self.name, self.public_key)

    def encode(self) -> str:
        material = base64.b64encode(ED25519_TYPE + self.public_key).decode()
        return f"{self.name}+{self.key_id.hex()}+{material}"

    @classmethod
    def parse(cls, text: str) -> VerifierKey:
        parts = text.strip().split("+", 2)
        if len(parts) != 3 or not _KEY_NAME.fullmatch(parts[0]) or not re.fullmatch(r"[0-9a-f]{8}", parts[1]):
            raise SigningKeyError("verifier key must be <name>+<8 hex>+<base64 key>")
        material = _b64decode(parts[2], "verifier key", SigningKeyError)
        if len(material) != 1 + 32 or material[:1] != ED25519_TYPE:
            raise SigningKeyError("verifier key is not an Ed25519 key")
        key = cls(parts[0], material[1:])
        if key.key_id.hex() != parts[1]:
            raise SigningKeyError("verifier key id does not match its name and key")
        return key


class SigningKey:
    """The log's Ed25519 signing key, with its note key name."""

    def __init__(self, *, name: str, private_key: Ed25519PrivateKey) -> None:
        if not _KEY_NAME.fullmatch(name):
            raise SigningKeyError(f"key name {name!r} must be non-empty without spaces or '+'")
        self.name = name
        self._private_key = private_key
        raw_public = private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.verifier = VerifierKey(name, raw_public)

    @classmethod
    def generate(cls, *, name: str) -> SigningKey:
        return cls(name=name, private_key=Ed25519PrivateKey.generate())

    def encode(self) -> str:
        """The secret key file contents. Keep it out of logs and repositories."""
        from cryptography.hazmat.primitives.serialization import NoEncryption, PrivateFormat

        seed = self._private_key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        material = base64.b64encode(ED25519_TYPE + seed).decode()
        return f"PRIVATE+KEY+{self.name}+{self.verifier.key_id.hex()}+{material}"

    @classmethod
    def parse(cls, text: str) -> SigningKey:
        parts = text.strip().split("+", 4)
        if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"]:
            raise SigningKeyError("signing key must be PRIVATE+KEY+<name>+<8 hex>+<base64 key>")
        material = _b64decode(parts[4], "signing key", SigningKeyError)
        if len(material) != 1 + 32 or material[:1] != ED25519_TYPE:
            raise SigningKeyError("signing key is not an Ed25519 key")
        key = cls(name=parts[2], private_key=Ed25519PrivateKey.from_private_bytes(material[1:]))
        if key.verifier.key_id.hex() != parts[3]:
            raise SigningKeyError("signing key id does not match its name and key")
        return key

    def sign_note(self, text: str) -> str:
        if not text.endswith("\n") or "\n\n" in text:
            raise MalformedCheckpoint("note text must end with a newline and contain no blank line")
        signature = self._private_key.sign(text.encode())
        blob = base64.b64encode(self.verifier.key_id + signature).decode()
        return f"{text}\n{_EM_DASH} {self.name} {blob}\n"


def open_note(note: str, *, verifier: VerifierKey) -> str:
    """Return the note's text if a signature line by ``verifier`` verifies; raise otherwise.

    Lines by other keys are ignored (a witness may cosign), but a line that claims our key
    name and id and does not verify is an error, as is a note with no line from our key.
    """
    if len(note.encode()) > MAX_NOTE_BYTES:
        raise MalformedCheckpoint("signed note is too large")
    split = note.rfind("\n\n")
    if split < 0 or not note.endswith("\n"):
        raise MalformedCheckpoint("signed note has no blank line before its signatures")
    text, signature_block = note[: split + 1], note[split + 2 :]
    found = False
    for line in signature_block.splitlines():
        parts = line.split(" ")
        if len(parts) != 3 or parts[0] != _EM_DASH:
            raise MalformedCheckpoint(f"malformed signature line {line!r:.80}")
        blob = _b64decode(parts[2], "signature", MalformedCheckpoint)
        if len(blob) < 5:
            raise MalformedCheckpoint("signature line is too short")
        if parts[1] != verifier.name or blob[:4] != verifier.key_id:
            continue
        found = True
        try:
            Ed25519PublicKey.from_public_bytes(verifier.public_key).verify(blob[4:], text.encode())
        except InvalidSignature:
            raise CheckpointSignatureInvalid(
                f"signature by {verifier.name} ({verifier.key_id.hex()}) does not verify"
            ) from None
    if not found:
        raise CheckpointSignatureInvalid(f"no signature by the trusted key {verifier.name} ({verifier.key_id.hex()})")
    return text


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root_hash: bytes

    def body(self) -> str:
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root_hash).decode()}\n"

    @classmethod
    def parse_body(cls, text: str) -> Checkpoint:
        lines = text.split("\n")
        if len(lines) < 4 or lines[-1] != "":
            raise MalformedCheckpoint("checkpoint body needs origin, size and root lines")
        origin, size_text, root_text = lines[0], lines[1], lines[2]
        if not _ORIGIN.fullmatch(origin):
            raise MalformedCheckpoint(f"bad checkpoint origin {origin!r:.80}")
        if not re.fullmatch(r"0|[1-9][0-9]{0,19}", size_text):
            raise MalformedCheckpoint(f"bad checkpoint size {size_text!r:.40}")
        root = _b64decode(root_text, "checkpoint root", MalformedCheckpoint)
        if len(root) != HASH_SIZE:
            raise MalformedCheckpoint("checkpoint root is not a 32-byte hash")
        return cls(origin, int(size_text), root)


def sign_checkpoint(checkpoint: Checkpoint, *, key: SigningKey) -> str:
    return key.sign_note(checkpoint.body())


def open_checkpoint(note: str, *, verifier: VerifierKey, origin: str | None = None) -> Checkpoint:
    """Verify a signed checkpoint and return it; raise a ``CheckpointError`` otherwise."""
    checkpoint = Checkpoint.parse_body(open_note(note, verifier=verifier))
    if origin is not None and checkpoint.origin != origin:
        raise MalformedCheckpoint(f"checkpoint origin {checkpoint.origin!r} is not {origin!r}")
    return checkpoint


def check_consistent(*, older: Checkpoint, newer: Checkpoint, proof: list[bytes]) -> None:
    """Two checkpoints of one log: raise ``ForkedCheckpoint`` or ``TruncatedLog`` if they conflict."""
    if older.origin != newer.origin:
        raise MalformedCheckpoint(f"checkpoints of different logs: {older.origin!r} and {newer.origin!r}")
    if newer.size < older.size:
        raise TruncatedLog(f"log shrank from {older.size} to {newer.size} entries")
    if newer.size == older.size and newer.root_hash != older.root_hash:
        raise ForkedCheckpoint(f"two signed checkpoints of size {older.size} with different roots")
    try:
        verify_consistency(
            old_size=older.size,
            new_size=newer.size,
            old_root=older.root_hash,
            new_root=newer.root_hash,
            proof=proof,
        )
    except ConsistencyProofInvalid as exc:
        raise ForkedCheckpoint(f"checkpoint {newer.size} does not extend checkpoint {older.size}: {exc}") from exc
