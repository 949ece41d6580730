"""Per-voice encryption of stored audio and profiles, and erasure by destroying the voice's key.

Each voice gets a random 256-bit data key; every sample is sealed with AES-256-GCM under it, with
the voice id and sample kind as associated data (a ciphertext moved to another voice or kind
fails to open). The data key is stored wrapped (AES-256-GCM) with the deployment's
key-encryption key, which the gateway reads from its key file: a database dump alone opens
nothing. Erasure deletes the ciphertexts *and* the key row, so copies of ciphertext that
survive elsewhere (backups, WAL) stay unreadable once the key row is gone from them too.
"""

from __future__ import annotations

import hashlib
import os
from datetime import datetime

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Engine, delete, select, text, update
from sqlalchemy.orm import Session

from policy.consent.models import Consent, Voice, VoiceKey, VoiceSample
from policy.errors import ConsentRequestInvalid, VoiceErased, VoiceKeyDestroyed, VoiceKeyUnwrapFailed

KEY_BYTES = 32
_NONCE_BYTES = 12


def _check_kek(key_encryption_key: bytes) -> AESGCM:
    if not isinstance(key_encryption_key, bytes) or len(key_encryption_key) != KEY_BYTES:
        raise ConsentRequestInvalid("the key-encryption key must be exactly 32 bytes")
    return AESGCM(key_encryption_key)


def create_voice_key(session: Session, *, voice_id: str, key_encryption_key: bytes) -> None:
    kek = _check_kek(key_encryption_key)
    data_key = AESGCM.generate_key(bit_length=256)
    session.add(VoiceKey(voice_id=voice_id, wrapped_key=_wrap(kek, voice_id=voice_id, data_key=data_key)))
    session.flush()


def _unwrap(kek: AESGCM, row: VoiceKey) -> bytes:
    nonce, sealed = row.wrapped_key[:_NONCE_BYTES], row.wrapped_key[_NONCE_BYTES:]
    try:
        return kek.decrypt(nonce, sealed, f"voice-key:{row.voice_id}".encode())
    except InvalidTag as exc:
        raise VoiceKeyUnwrapFailed(
            f"the data key of voice {row.voice_id} does not open with the configured key-encryption key"
        ) from exc


def _wrap(kek: AESGCM, *, voice_id: str, data_key: bytes) -> bytes:
    nonce = os.urandom(_NONCE_BYTES)
    return nonce + kek.encrypt(nonce, data_key, f"voice-key:{voice_id}".encode())


def _data_key(session: Session, *, voice_id: str, key_encryption_key: bytes) -> AESGCM:
    kek = _check_kek(key_encryption_key)
    row = session.get(VoiceKey, voice_id)
    if row is None:
        raise VoiceKeyDestroyed(f"voice {voice_id} has no data key (erased)")
    return AESGCM(_unwrap(kek, row))


def check_key_encryption_key(session: Session, *, key_encryption_key: bytes) -> None:
    """Raise ``VoiceKeyUnwrapFailed`` unless the newest stored voice key opens with this key
    (no stored voice: nothing to check). Start-up calls it so a wrong key file stops the gateway
    instead of failing every synthesis."""
    kek = _check_kek(key_encryption_key)
    row = session.scalars(select(VoiceKey).order_by(VoiceKey.created_at.desc()).limit(1)).first()
    if row is not None:
        _unwrap(kek, row)


def rewrap_voice_keys(session: Session, *, old_key_encryption_key: bytes, new_key_encryption_key: bytes) -> int:
    """Wrap every voice's data key with the new key-encryption key; returns how many changed.

    Keys already wrapped with the new key are left alone, so an interrupted run can be repeated;
    a key that opens with neither raises ``VoiceKeyUnwrapFailed`` and the caller rolls back.
    The data keys themselves, and so every stored ciphertext, stay as they are.
    """
    old, new = _check_kek(old_key_encryption_key), _check_kek(new_key_encryption_key)
    changed = 0
    for row in session.scalars(select(VoiceKey).order_by(VoiceKey.voice_id)):
        try:
            _unwrap(new, row)
            continue
        except VoiceKeyUnwrapFailed:
            pass
        row.wrapped_key = _wrap(new, voice_id=row.voice_id, data_key=_unwrap(old, row))
        changed += 1
    session.flush()
    return changed


def _samples_to_bytes(audio: np.ndarray) -> bytes:
    return np.asarray(audio, dtype="<f4").tobytes()


def _seal(
    session: Session, *, voice_id: str, kind: str, plaintext: bytes, sample_rate: int, key_encryption_key: bytes
) -> VoiceSample:
    key = _data_key(session, voice_id=voice_id, key_encryption_key=key_encryption_key)
    nonce = os.urandom(_NONCE_BYTES)
    row = VoiceSample(
        voice_id=voice_id,
        kind=kind,
        sample_rate=sample_rate,
        nonce=nonce,
        ciphertext=key.encrypt(nonce, plaintext, f"{voice_id}:{kind}".encode()),
        sha256=hashlib.sha256(plaintext).hexdigest(),
    )
    session.add(row)
    session.flush()
    return row


def _unsealed(session: Session, *, voice_id: str, kind: str, key_encryption_key: bytes) -> list[tuple[bytes, int]]:
    """Decrypted (plaintext, sample_rate) pairs of one kind, oldest first."""
    key = _data_key(session, voice_id=voice_id, key_encryption_key=key_encryption_key)
    rows = session.scalars(
        select(VoiceSample).where(VoiceSample.voice_id == voice_id, VoiceSample.kind == kind).order_by(VoiceSample.id)
    ).all()
    return [(key.decrypt(row.nonce, row.ciphertext, f"{voice_id}:{kind}".encode()), row.sample_rate) for row in rows]


def store_sample(
    session: Session, *, voice_id: str, kind: str, data: np.ndarray, sample_rate: int, key_encryption_key: bytes
) -> VoiceSample:
    """Encrypt and store a float32 array (audio, or the profile vector with sample_rate 0)."""
    return _seal(
        session,
        voice_id=voice_id,
        kind=kind,
        plaintext=_samples_to_bytes(data),
        sample_rate=sample_rate,
        key_encryption_key=key_encryption_key,
    )


def load_samples(
    session: Session, *, voice_id: str, kind: str, key_encryption_key: bytes
) -> list[tuple[np.ndarray, int]]:
    """Decrypted (array, sample_rate) pairs of one kind, oldest first."""
    return [
        (np.frombuffer(plaintext, dtype="<f4").copy(), sample_rate)
        for plaintext, sample_rate in _unsealed(
            session, voice_id=voice_id, kind=kind, key_encryption_key=key_encryption_key
        )
    ]


def store_blob(
    session: Session, *, voice_id: str, kind: str, data: bytes, key_encryption_key: bytes, replace: bool = False
) -> VoiceSample:
    """Encrypt and store opaque bytes (the engine's voice profile), optionally replacing the old ones."""
    if replace:
        session.execute(delete(VoiceSample).where(VoiceSample.voice_id == voice_id, VoiceSample.kind == kind))
    return _seal(
        session, voice_id=voice_id, kind=kind, plaintext=data, sample_rate=0, key_encryption_key=key_encryption_key
    )


def load_blob(session: Session, *, voice_id: str, kind: str, key_encryption_key: bytes) -> bytes | None:
    """The newest stored bytes of one kind, or None."""
    blobs = _unsealed(session, voice_id=voice_id, kind=kind, key_encryption_key=key_encryption_key)
    return blobs[-1][0] if blobs else None


def replace_profile(session: Session, *, voice_id: str, profile: np.ndarray, key_encryption_key: bytes) -> None:
    session.execute(delete(VoiceSample).where(VoiceSample.voice_id == voice_id, VoiceSample.kind == "profile"))
    store_sample(
        session, voice_id=voice_id, kind="profile", data=profile, sample_rate=0, key_encryption_key=key_encryption_key
    )


def erase_voice_data(session: Session, *, voice_id: str, now: datetime) -> None:
    """Delete every sample and the key of a voice, revoke its consents, mark it erased.

    Fingerprints of its consent recordings stay (see models.ConsentFingerprint); the usage
    ledger keeps ids and text hashes only, like the audit log.
    """
    voice = session.get(Voice, voice_id)
    if voice is None or voice.status == "erased":
        raise VoiceErased(f"voice {voice_id} is already erased")
    if session.get_bind().dialect.name == "sqlite":
        # SQLite otherwise leaves deleted rows in free pages of the file; this makes it overwrite
        # them with zeros. Old page images stay in the write-ahead log until a checkpoint, and
        # PostgreSQL keeps dead tuples until VACUUM: see purge_erased_remnants.
        session.execute(text("PRAGMA secure_delete = ON"))
    session.execute(delete(VoiceSample).where(VoiceSample.voice_id == voice_id))
    session.execute(delete(VoiceKey).where(VoiceKey.voice_id == voice_id))
    session.execute(
        update(Consent).where(Consent.voice_id == voice_id, Consent.revoked_at.is_(None)).values(revoked_at=now)
    )
    voice.status = "erased"
    voice.erased_at = now
    session.flush()


def purge_erased_remnants(engine: Engine) -> None:
    """After the erasure's transaction committed: drop the old copies the database still holds.

    SQLite: checkpoint and truncate the write-ahead log (it holds pre-erasure page images).
    PostgreSQL: VACUUM the two tables so dead tuples with ciphertext and wrapped keys are removed.
    The gateway calls this right after committing ``erase_voice_data``; backups age out by policy.
    """
    if engine.dialect.name == "sqlite":
        with engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    elif engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql("VACUUM voice_keys, voice_samples")
