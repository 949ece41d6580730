"""Consent: challenges, voices, per-voice keys, encrypted samples, consents, fingerprints, usage.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from policy.db import AutoId, UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_ID = sa.String(32)


def _voice_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["voice_id"], ["voices.id"], name=op.f(f"fk_{table}_voice_id_voices"))


def upgrade() -> None:
    op.create_table(
        "consent_challenges",
        sa.Column("id", _ID, nullable=False),
        sa.Column("owner_iss", sa.String(300), nullable=False),
        sa.Column("owner_sub", sa.String(300), nullable=False),
        sa.Column("owner_name", sa.String(200), nullable=False),
        sa.Column("grantee_kind", sa.String(16), nullable=False),
        sa.Column("grantee_id", sa.String(300), nullable=False),
        sa.Column("grantee_name", sa.String(200), nullable=False),
        sa.Column("purposes", sa.JSON(), nullable=False),
        sa.Column("languages", sa.JSON(), nullable=False),
        sa.Column("not_before", UTCDateTime(), nullable=False),
        sa.Column("not_after", UTCDateTime(), nullable=False),
        sa.Column("max_uses", sa.Integer(), nullable=False),
        sa.Column("statement_language", sa.String(16), nullable=False),
        sa.Column("statement_text", sa.Text(), nullable=False),
        sa.Column("phrase", sa.String(400), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("used_at", UTCDateTime(), nullable=True),
        sa.CheckConstraint("grantee_kind IN ('tenant', 'subject')", name=op.f("ck_consent_challenges_grantee_kind")),
        sa.CheckConstraint("max_uses > 0", name=op.f("ck_consent_challenges_max_uses_positive")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent_challenges")),
    )

    op.create_table(
        "voices",
        sa.Column("id", _ID, nullable=False),
        sa.Column("owner_iss", sa.String(300), nullable=False),
        sa.Column("owner_sub", sa.String(300), nullable=False),
        sa.Column("owner_name", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("embedder_name", sa.String(100), nullable=False),
        sa.Column("profile_version", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("erased_at", UTCDateTime(), nullable=True),
        sa.CheckConstraint("status IN ('active', 'erased')", name=op.f("ck_voices_status")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_voices")),
    )
    op.create_index(op.f("ix_voices_owner_iss"), "voices", ["owner_iss"])
    op.create_index(op.f("ix_voices_owner_sub"), "voices", ["owner_sub"])

    op.create_table(
        "voice_keys",
        sa.Column("voice_id", _ID, nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        _voice_fk("voice_keys"),
        sa.PrimaryKeyConstraint("voice_id", name=op.f("pk_voice_keys")),
    )

    op.create_table(
        "voice_samples",
        sa.Column("id", AutoId, autoincrement=True, nullable=False),
        sa.Column("voice_id", _ID, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("sample_rate", sa.Integer(), nullable=False),
        sa.Column("nonce", sa.LargeBinary(), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint(
            "kind IN ('reference', 'consent', 'profile', 'engine_profile')", name=op.f("ck_voice_samples_kind")
        ),
        _voice_fk("voice_samples"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_voice_samples")),
    )
    op.create_index(op.f("ix_voice_samples_voice_id"), "voice_samples", ["voice_id"])

    op.create_table(
        "consents",
        sa.Column("id", _ID, nullable=False),
        sa.Column("voice_id", _ID, nullable=False),
        sa.Column("challenge_id", _ID, nullable=False),
        sa.Column("owner_iss", sa.String(300), nullable=False),
        sa.Column("owner_sub", sa.String(300), nullable=False),
        sa.Column("grantee_kind", sa.String(16), nullable=False),
        sa.Column("grantee_id", sa.String(300), nullable=False),
        sa.Column("purposes", sa.JSON(), nullable=False),
        sa.Column("languages", sa.JSON(), nullable=False),
        sa.Column("not_before", UTCDateTime(), nullable=False),
        sa.Column("not_after", UTCDateTime(), nullable=False),
        sa.Column("max_uses", sa.Integer(), nullable=False),
        sa.Column("uses", sa.Integer(), nullable=False),
        sa.Column("statement_sha256", sa.String(64), nullable=False),
        sa.Column("recording_sha256", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.CheckConstraint("grantee_kind IN ('tenant', 'subject')", name=op.f("ck_consents_grantee_kind")),
        sa.CheckConstraint("uses >= 0 AND uses <= max_uses", name=op.f("ck_consents_uses_within_max")),
        _voice_fk("consents"),
        sa.ForeignKeyConstraint(
            ["challenge_id"], ["consent_challenges.id"], name=op.f("fk_consents_challenge_id_consent_challenges")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consents")),
        sa.UniqueConstraint("challenge_id", name=op.f("uq_consents_challenge_id")),
    )
    op.create_index(op.f("ix_consents_voice_id"), "consents", ["voice_id"])

    op.create_table(
        "consent_fingerprints",
        sa.Column("id", AutoId, autoincrement=True, nullable=False),
        sa.Column("consent_id", _ID, nullable=False),
        sa.Column("fingerprint", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent_fingerprints")),
    )
    op.create_index(op.f("ix_consent_fingerprints_consent_id"), "consent_fingerprints", ["consent_id"])

    op.create_table(
        "voice_usage",
        sa.Column("id", AutoId, autoincrement=True, nullable=False),
        sa.Column("voice_id", _ID, nullable=False),
        sa.Column("consent_id", _ID, nullable=False),
        sa.Column("principal_iss", sa.String(300), nullable=False),
        sa.Column("principal_sub", sa.String(300), nullable=False),
        sa.Column("tenant", sa.String(300), nullable=True),
        sa.Column("purpose", sa.String(100), nullable=False),
        sa.Column("language", sa.String(16), nullable=False),
        sa.Column("text_sha256", sa.String(64), nullable=False),
        sa.Column("audit_index", AutoId, nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_voice_usage")),
    )
    op.create_index(op.f("ix_voice_usage_voice_id"), "voice_usage", ["voice_id"])


def downgrade() -> None:
    op.drop_table("voice_usage")
    op.drop_table("consent_fingerprints")
    op.drop_table("consents")
    op.drop_table("voice_samples")
    op.drop_table("voice_keys")
    op.drop_table("voices")
    op.drop_table("consent_challenges")
