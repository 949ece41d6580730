"""Usage ledger rows for an owner's own synthesis, which no consent grant stands behind.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("voice_usage") as batch:
        batch.alter_column("consent_id", existing_type=sa.String(32), nullable=True)


def downgrade() -> None:
    # An owner's own uses have no consent to point at; the older schema cannot hold them.
    op.execute("DELETE FROM voice_usage WHERE consent_id IS NULL")
    with op.batch_alter_table("voice_usage") as batch:
        batch.alter_column("consent_id", existing_type=sa.String(32), nullable=False)
