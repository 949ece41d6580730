"""Protected-speaker list: entries, sample embeddings, exceptions, cohort, review queue, version.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from policy.db import AutoId, UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _enum(name: str, *values: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=True, length=16)


def _entry_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["entry_id"], ["protected_speakers.id"], name=op.f(f"fk_{table}_entry_id_protected_speakers")
    )


def upgrade() -> None:
    op.create_table(
        "protected_speakers",
        sa.Column("id", AutoId, autoincrement=True, nullable=False),
        sa.Column("kind", _enum("entry_kind", "listed", "opt_out"), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("source", sa.String(500), nullable=False),
        sa.Column("owner_iss", sa.String(200), nullable=True),
        sa.Column("owner_sub", sa.String(200), nullable=True),
        sa.Column("embedder_name", sa.String(100), nullable=False),
        sa.Column("model", sa.LargeBinary(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("deactivated_by", sa.String(200), nullable=True),
        sa.Column("deactivated_at", UTCDateTime(), nullable=True),
        sa.Column("deactivation_reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_protected_speakers")),
    )
    op.create_index(op.f("ix_protected_speakers_active"), "protected_speakers", ["active"])

    op.create_table(
        "protected_speaker_samples",
        sa.Column("id", AutoId, autoincrement=True, nullable=False),
        sa.Column("entry_id", AutoId, nullable=False),
        sa.Column("embedder_name", sa.String(100), nullable=False),
        sa.Column("embedding", sa.LargeBinary(), nullable=False),
        sa.Column("audio_sha256", sa.String(64), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("added_by", sa.String(200), nullable=False),
        sa.Column("added_at", UTCDateTime(), nullable=False),
        _entry_fk("protected_speaker_samples"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_protected_speaker_samples")),
    )
    op.create_index(op.f("ix_protected_speaker_samples_entry_id"), "protected_speaker_samples", ["entry_id"])

    op.create_table(
        "protected_speaker_exceptions",
        sa.Column("id", AutoId, autoincrement=True, nullable=False),
        sa.Column("entry_id", AutoId, nullable=False),
        sa.Column("voice_id", sa.String(200), nullable=False),
        sa.Column("consent_grant_id", sa.String(200), nullable=False),
        sa.Column("consent_score", sa.Float(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("granted_by", sa.String(200), nullable=False),
        sa.Column("granted_at", UTCDateTime(), nullable=False),
        sa.Column("revoked_by", sa.String(200), nullable=True),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        _entry_fk("protected_speaker_exceptions"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_protected_speaker_exceptions")),
        sa.UniqueConstraint("entry_id", "voice_id", name=op.f("uq_protected_speaker_exceptions_entry_id")),
    )
    for column in ("entry_id", "voice_id"):
        op.create_index(op.f(f"ix_protected_speaker_exceptions_{column}"), "protected_speaker_exceptions", [column])

    op.create_table(
        "blocklist_cohort",
        sa.Column("id", AutoId, autoincrement=True, nullable=False),
        sa.Column("label", sa.String(200), nullable=False),
        sa.Column("embedder_name", sa.String(100), nullable=False),
        sa.Column("embedding", sa.LargeBinary(), nullable=False),
        sa.Column("added_by", sa.String(200), nullable=False),
        sa.Column("added_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_blocklist_cohort")),
    )
    op.create_index(op.f("ix_blocklist_cohort_embedder_name"), "blocklist_cohort", ["embedder_name"])

    op.create_table(
        "blocklist_review_items",
        sa.Column("id", AutoId, autoincrement=True, nullable=False),
        sa.Column("status", _enum("review_status", "pending", "approved", "denied"), nullable=False),
        sa.Column("stage", _enum("screening_stage", "reference", "synthesis", "output"), nullable=False),
        sa.Column("entry_id", AutoId, nullable=False),
        sa.Column("voice_id", sa.String(200), nullable=False),
        sa.Column("request_ref", sa.String(200), nullable=False),
        sa.Column("requester_iss", sa.String(200), nullable=False),
        sa.Column("requester_sub", sa.String(200), nullable=False),
        sa.Column("tenant", sa.String(200), nullable=True),
        sa.Column("raw_score", sa.Float(), nullable=False),
        sa.Column("normalized_score", sa.Float(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("decided_by", sa.String(200), nullable=True),
        sa.Column("decided_at", UTCDateTime(), nullable=True),
        sa.Column("decision_note", sa.Text(), nullable=True),
        _entry_fk("blocklist_review_items"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_blocklist_review_items")),
    )
    for column in ("entry_id", "status", "voice_id"):
        op.create_index(op.f(f"ix_blocklist_review_items_{column}"), "blocklist_review_items", [column])

    state = op.create_table(
        "blocklist_state",
        sa.Column("id", AutoId, autoincrement=False, nullable=False),
        sa.Column("version", AutoId, nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_blocklist_state")),
    )
    # The single row every gateway process polls; changes bump its version.
    op.bulk_insert(state, [{"id": 1, "version": 0, "updated_at": datetime.now(UTC)}])


def downgrade() -> None:
    op.drop_table("blocklist_state")
    for column in ("entry_id", "status", "voice_id"):
        op.drop_index(op.f(f"ix_blocklist_review_items_{column}"), table_name="blocklist_review_items")
    op.drop_table("blocklist_review_items")
    op.drop_index(op.f("ix_blocklist_cohort_embedder_name"), table_name="blocklist_cohort")
    op.drop_table("blocklist_cohort")
    for column in ("entry_id", "voice_id"):
        op.drop_index(op.f(f"ix_protected_speaker_exceptions_{column}"), table_name="protected_speaker_exceptions")
    op.drop_table("protected_speaker_exceptions")
    op.drop_index(op.f("ix_protected_speaker_samples_entry_id"), table_name="protected_speaker_samples")
    op.drop_table("protected_speaker_samples")
    op.drop_index(op.f("ix_protected_speakers_active"), table_name="protected_speakers")
    op.drop_table("protected_speakers")
