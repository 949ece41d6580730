"""Tables of the protected-speaker list.

No raw audio is stored: an entry keeps the embeddings of its samples (and the sha256 of each
sample's audio, so a later dispute can show which file was enrolled) and the model averaged
from them. ``blocklist_state`` holds one row whose ``version`` grows with every change; each
gateway process polls it to know when to reload its in-memory index.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Boolean, Enum, Float, ForeignKey, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from policy.db import AutoId, PolicyBase, UTCDateTime, metadata

__all__ = ["metadata"]  # re-exported for migrations/metadata.py

STATE_ROW_ID = 1


class EntryKind(enum.StrEnum):
    LISTED = "listed"  # added by an administrator (public figure, court order, ...)
    OPT_OUT = "opt_out"  # the owner of the voice put it on the list themselves


class ReviewStatus(enum.StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"


class ScreeningStage(enum.StrEnum):
    REFERENCE = "reference"  # a voice's references at enrolment
    SYNTHESIS = "synthesis"  # the voice's references again, at every synthesis request
    OUTPUT = "output"  # the generated audio, before release


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    # Stored as plain strings with a CHECK constraint: identical on SQLite and PostgreSQL.
    return Enum(
        cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=16,
        values_callable=lambda members: [member.value for member in members],
    )


class ProtectedSpeaker(PolicyBase):
    __tablename__ = "protected_speakers"

    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    kind: Mapped[EntryKind] = mapped_column(_enum(EntryKind, "entry_kind"), nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    source: Mapped[str] = mapped_column(String(500), nullable=False)
    # For opt-out entries: whose voice it is (the JWT issuer and subject that opted out).
    owner_iss: Mapped[str | None] = mapped_column(String(200), nullable=True)
    owner_sub: Mapped[str | None] = mapped_column(String(200), nullable=True)
    embedder_name: Mapped[str] = mapped_column(String(100), nullable=False)
    model: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)  # float32 unit vector
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, index=True)
    created_by: Mapped[str] = mapped_column(String(200), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    deactivated_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    deactivated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    deactivation_reason: Mapped[str | None] = mapped_column(Text, nullable=True)


class ProtectedSpeakerSample(PolicyBase):
    __tablename__ = "protected_speaker_samples"

    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("protected_speakers.id"), nullable=False, index=True)
    embedder_name: Mapped[str] = mapped_column(String(100), nullable=False)
    embedding: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    audio_sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    seconds: Mapped[float] = mapped_column(Float, nullable=False)
    added_by: Mapped[str] = mapped_column(String(200), nullable=False)
    added_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class BlocklistException(PolicyBase):
    """One voice allowed past one entry, because the protected person consented to it."""

    __tablename__ = "protected_speaker_exceptions"
    __table_args__ = (UniqueConstraint("entry_id", "voice_id"),)

    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("protected_speakers.id"), nullable=False, index=True)
    voice_id: Mapped[str] = mapped_column(String(200), nullable=False, index=True)
    consent_grant_id: Mapped[str] = mapped_column(String(200), nullable=False)
    consent_score: Mapped[float] = mapped_column(Float, nullable=False)
    note: Mapped[str] = mapped_column(Text, nullable=False)
    granted_by: Mapped[str] = mapped_column(String(200), nullable=False)
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    revoked_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class CohortSpeaker(PolicyBase):
    """A speaker known not to be on the list, for score normalisation; curated by admins only."""

    __tablename__ = "blocklist_cohort"

    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    label: Mapped[str] = mapped_column(String(200), nullable=False)
    embedder_name: Mapped[str] = mapped_column(String(100), nullable=False, index=True)
    embedding: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    added_by: Mapped[str] = mapped_column(String(200), nullable=False)
    added_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class ReviewItem(PolicyBase):
    __tablename__ = "blocklist_review_items"

    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    status: Mapped[ReviewStatus] = mapped_column(_enum(ReviewStatus, "review_status"), nullable=False, index=True)
    stage: Mapped[ScreeningStage] = mapped_column(_enum(ScreeningStage, "screening_stage"), nullable=False)
    entry_id: Mapped[int] = mapped_column(ForeignKey("protected_speakers.id"), nullable=False, index=True)
    voice_id: Mapped[str] = mapped_column(String(200), nullable=False, index=True)
    request_ref: Mapped[str] = mapped_column(String(200), nullable=False)
    requester_iss: Mapped[str] = mapped_column(String(200), nullable=False)
    requester_sub: Mapped[str] = mapped_column(String(200), nullable=False)
    tenant: Mapped[str | None] = mapped_column(String(200), nullable=True)
    raw_score: Mapped[float] = mapped_column(Float, nullable=False)
    normalized_score: Mapped[float] = mapped_column(Float, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    decided_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    decision_note: Mapped[str | None] = mapped_column(Text, nullable=True)


class BlocklistState(PolicyBase):
    __tablename__ = "blocklist_state"

    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=False)
    version: Mapped[int] = mapped_column(AutoId, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
