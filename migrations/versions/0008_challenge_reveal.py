"""When a consent challenge's confirmation words were revealed: the recording window starts there.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from policy.db import UTCDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("consent_challenges") as batch:
        batch.add_column(sa.Column("revealed_at", UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("consent_challenges") as batch:
        batch.drop_column("revealed_at")
