"""Gateway replicas and the leases of admitted requests, so every admitted request gets an outcome.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from policy.db import AutoId, UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gateway_replicas",
        sa.Column("id", AutoId, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("heartbeat_at", UTCDateTime(), nullable=False),
        sa.Column("stopped_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gateway_replicas")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_gateway_replicas_heartbeat_at"), "gateway_replicas", ["heartbeat_at"])
    op.create_table(
        "request_leases",
        sa.Column("request_id", sa.String(32), nullable=False),
        sa.Column("replica_id", AutoId, nullable=False),
        sa.Column("voice_id", sa.String(32), nullable=False),
        sa.Column("consent_id", sa.String(32), nullable=True),
        sa.Column("use_reserved", sa.Boolean(), nullable=False),
        sa.Column("actor_iss", sa.String(300), nullable=False),
        sa.Column("actor_sub", sa.String(300), nullable=False),
        sa.Column("actor_role", sa.String(32), nullable=False),
        sa.Column("actor_tenant", sa.String(300), nullable=True),
        sa.Column("text_sha256", sa.String(64), nullable=False),
        sa.Column("admitted_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["replica_id"], ["gateway_replicas.id"], name=op.f("fk_request_leases_replica_id_gateway_replicas")
        ),
        sa.PrimaryKeyConstraint("request_id", name=op.f("pk_request_leases")),
    )
    op.create_index(op.f("ix_request_leases_replica_id"), "request_leases", ["replica_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_request_leases_replica_id"), table_name="request_leases")
    op.drop_table("request_leases")
    op.drop_index(op.f("ix_gateway_replicas_heartbeat_at"), table_name="gateway_replicas")
    op.drop_table("gateway_replicas")
