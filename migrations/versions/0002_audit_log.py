"""Audit log: pending events, leaves, perfect-subtree nodes, signed checkpoints.

The leaves, nodes and checkpoints tables are append-only: triggers refuse UPDATE and DELETE on
both backends, so the application cannot rewrite history by accident; an attacker with owner
rights can drop them, which is what the Merkle tree, the signed checkpoints and the start-up
check (`clonegate audit check`) are for.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from audit.models import AutoId, UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

APPEND_ONLY_TABLES = ("audit_leaves", "audit_nodes", "audit_checkpoints")


def upgrade() -> None:
    op.create_table(
        "audit_pending",
        sa.Column("id", AutoId, primary_key=True, autoincrement=True),
        sa.Column("entry", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_pending")),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "audit_leaves",
        sa.Column("leaf_index", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("pending_id", sa.BigInteger(), nullable=False),
        sa.Column("entry", sa.LargeBinary(), nullable=False),
        sa.Column("leaf_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("event_id", sa.String(200), nullable=False),
        sa.Column("event_time", UTCDateTime(), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("actor_iss", sa.String(200), nullable=False),
        sa.Column("actor_sub", sa.String(200), nullable=False),
        sa.Column("tenant", sa.String(200), nullable=True),
        sa.Column("voice_id", sa.String(200), nullable=True),
        sa.Column("integrated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("leaf_index", name=op.f("pk_audit_leaves")),
        sa.UniqueConstraint("pending_id", name=op.f("uq_audit_leaves_pending_id")),
    )
    for column in ("event_id", "event_time", "action", "actor_sub", "tenant", "voice_id"):
        op.create_index(op.f(f"ix_audit_leaves_{column}"), "audit_leaves", [column])
    op.create_table(
        "audit_nodes",
        sa.Column("level", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("node_index", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("hash", sa.LargeBinary(32), nullable=False),
        sa.PrimaryKeyConstraint("level", "node_index", name=op.f("pk_audit_nodes")),
    )
    op.create_table(
        "audit_checkpoints",
        sa.Column("tree_size", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("root_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("tree_size", name=op.f("pk_audit_checkpoints")),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION audit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "RAISE EXCEPTION 'audit tables are append-only (% on %)', TG_OP, TG_TABLE_NAME; END $$"
        )
        for table in APPEND_ONLY_TABLES:
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION audit_refuse_change()"
            )
    else:
        for table in APPEND_ONLY_TABLES:
            for operation in ("UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER {table}_no_{operation.lower()} BEFORE {operation} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, 'audit tables are append-only'); END"
                )


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for table in APPEND_ONLY_TABLES:
        if dialect == "postgresql":
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
        else:
            for operation in ("update", "delete"):
                op.execute(f"DROP TRIGGER IF EXISTS {table}_no_{operation}")
    if dialect == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS audit_refuse_change()")
    op.drop_table("audit_checkpoints")
    op.drop_table("audit_nodes")
    for column in ("event_id", "event_time", "action", "actor_sub", "tenant", "voice_id"):
        op.drop_index(op.f(f"ix_audit_leaves_{column}"), table_name="audit_leaves")
    op.drop_table("audit_leaves")
    op.drop_table("audit_pending")
