"""Rate limits: what each budget spent per window, and refusals waiting to be audited.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from audit.models import UTCDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rate_limit_usage",
        sa.Column("bucket", sa.String(96), nullable=False),
        sa.Column("window_start", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.Column("used", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("bucket", "window_start", name=op.f("pk_rate_limit_usage")),
    )
    op.create_index("ix_rate_limit_usage_expires_at", "rate_limit_usage", ["expires_at"])
    op.create_table(
        "rate_limit_refusals",
        sa.Column("bucket", sa.String(96), nullable=False),
        sa.Column("window_start", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("limit_name", sa.String(64), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("actor_iss", sa.String(200), nullable=False),
        sa.Column("actor_sub", sa.String(200), nullable=False),
        sa.Column("actor_role", sa.String(32), nullable=False),
        sa.Column("tenant", sa.String(200), nullable=True),
        sa.Column("first_at", UTCDateTime(), nullable=False),
        sa.Column("last_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("bucket", "window_start", name=op.f("pk_rate_limit_refusals")),
    )
    op.create_index("ix_rate_limit_refusals_window_start", "rate_limit_refusals", ["window_start"])


def downgrade() -> None:
    op.drop_index("ix_rate_limit_refusals_window_start", table_name="rate_limit_refusals")
    op.drop_table("rate_limit_refusals")
    op.drop_index("ix_rate_limit_usage_expires_at", table_name="rate_limit_usage")
    op.drop_table("rate_limit_usage")
