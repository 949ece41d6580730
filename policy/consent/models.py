"""Consent tables: challenges, voices, per-voice keys, encrypted samples, consents, fingerprints, usage.

Identifiers of challenges, voices and consents are random 128-bit hex strings: they appear in
URLs and must not be guessable or enumerable. Everything a person could be recognized from
(reference audio, consent audio, the speaker profile) lives only in ``voice_samples``, encrypted
with the voice's own data key in ``voice_keys``; erasure deletes both (see storage.py).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    CheckConstraint,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from policy.db import AutoId, PolicyBase, UTCDateTime, utcnow

ID_LENGTH = 32


class ConsentChallenge(PolicyBase):
    __tablename__ = "consent_challenges"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    owner_iss: Mapped[str] = mapped_column(String(300))
    owner_sub: Mapped[str] = mapped_column(String(300))
    owner_name: Mapped[str] = mapped_column(String(200))
    grantee_kind: Mapped[str] = mapped_column(String(16))
    grantee_id: Mapped[str] = mapped_column(String(300))
    grantee_name: Mapped[str] = mapped_column(String(200))
    purposes: Mapped[list[str]] = mapped_column(JSON)
    languages: Mapped[list[str]] = mapped_column(JSON)
    not_before: Mapped[datetime] = mapped_column(UTCDateTime())
    not_after: Mapped[datetime] = mapped_column(UTCDateTime())
    max_uses: Mapped[int] = mapped_column(Integer)
    statement_language: Mapped[str] = mapped_column(String(16))
    statement_text: Mapped[str] = mapped_column(Text)
    # Space-separated phrase words, in order.
    phrase: Mapped[str] = mapped_column(String(400))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # The words must be revealed before expires_at; from revealed_at on, the recording is due
    # within the deployment's recording window (the words are not shown before).
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revealed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    __table_args__ = (
        CheckConstraint("grantee_kind IN ('tenant', 'subject')", name="grantee_kind"),
        CheckConstraint("max_uses > 0", name="max_uses_positive"),
    )


class Voice(PolicyBase):
    __tablename__ = "voices"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    owner_iss: Mapped[str] = mapped_column(String(300), index=True)
    owner_sub: Mapped[str] = mapped_column(String(300), index=True)
    owner_name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default="active")
    # Which embedder made the stored profile: profiles of different models never compare.
    embedder_name: Mapped[str] = mapped_column(String(100))
    profile_version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    __table_args__ = (CheckConstraint("status IN ('active', 'erased')", name="status"),)


class VoiceKey(PolicyBase):
    """The voice's AES-256-GCM data key, itself wrapped with the deployment's key-encryption key."""

    __tablename__ = "voice_keys"

    voice_id: Mapped[str] = mapped_column(ForeignKey("voices.id"), primary_key=True)
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class VoiceSample(PolicyBase):
    """One encrypted item of a voice: a reference or consent recording, or the speaker profile."""

    __tablename__ = "voice_samples"

    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    voice_id: Mapped[str] = mapped_column(ForeignKey("voices.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    sample_rate: Mapped[int] = mapped_column(Integer)
    nonce: Mapped[bytes] = mapped_column(LargeBinary)
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    # SHA-256 of the plaintext, for the audit log (a hash reveals no audio).
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (CheckConstraint("kind IN ('reference', 'consent', 'profile', 'engine_profile')", name="kind"),)


class Consent(PolicyBase):
    __tablename__ = "consents"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    voice_id: Mapped[str] = mapped_column(ForeignKey("voices.id"), index=True)
    challenge_id: Mapped[str] = mapped_column(ForeignKey("consent_challenges.id"), unique=True)
    owner_iss: Mapped[str] = mapped_column(String(300))
    owner_sub: Mapped[str] = mapped_column(String(300))
    grantee_kind: Mapped[str] = mapped_column(String(16))
    grantee_id: Mapped[str] = mapped_column(String(300))
    purposes: Mapped[list[str]] = mapped_column(JSON)
    languages: Mapped[list[str]] = mapped_column(JSON)
    not_before: Mapped[datetime] = mapped_column(UTCDateTime())
    not_after: Mapped[datetime] = mapped_column(UTCDateTime())
    max_uses: Mapped[int] = mapped_column(Integer)
    uses: Mapped[int] = mapped_column(Integer, default=0)
    statement_sha256: Mapped[str] = mapped_column(String(64))
    recording_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    __table_args__ = (
        CheckConstraint("grantee_kind IN ('tenant', 'subject')", name="grantee_kind"),
        CheckConstraint("uses >= 0 AND uses <= max_uses", name="uses_within_max"),
    )


class ConsentFingerprint(PolicyBase):
    """Landmark hashes of a consent recording, kept after erasure: they cannot be turned back into
    audio, and keeping them stops the erased person's recording from being replayed later."""

    __tablename__ = "consent_fingerprints"

    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    consent_id: Mapped[str] = mapped_column(String(ID_LENGTH), index=True)
    fingerprint: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class UsageRecord(PolicyBase):
    __tablename__ = "voice_usage"

    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    voice_id: Mapped[str] = mapped_column(String(ID_LENGTH), index=True)
    consent_id: Mapped[str | None] = mapped_column(String(ID_LENGTH), nullable=True)  # None: the owner's own use
    principal_iss: Mapped[str] = mapped_column(String(300))
    principal_sub: Mapped[str] = mapped_column(String(300))
    tenant: Mapped[str | None] = mapped_column(String(300), nullable=True)
    purpose: Mapped[str] = mapped_column(String(100))
    language: Mapped[str] = mapped_column(String(16))
    text_sha256: Mapped[str] = mapped_column(String(64))
    audit_index: Mapped[int | None] = mapped_column(AutoId, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
