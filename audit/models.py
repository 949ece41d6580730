"""The audit domain's tables (own MetaData; the schema itself comes from migration 0002).

* ``audit_pending``     - events appended on the request path: plain inserts, no lock, no order.
* ``audit_leaves``      - the log: contiguous leaf indices assigned by the single integrator,
                          with the canonical entry and a few columns copied out of it for queries.
* ``audit_nodes``       - every perfect-subtree hash above the leaves, so any inclusion or
                          consistency proof is O(log n) rows.
* ``audit_checkpoints`` - the signed checkpoints, one per tree size (the primary key makes two
                          checkpoints of one size, i.e. a fork, impossible to store).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import BigInteger, DateTime, Integer, LargeBinary, MetaData, SmallInteger, String, Text
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

# SQLite only auto-increments an INTEGER PRIMARY KEY (the rowid), not a BIGINT one.
AutoId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC on every backend (SQLite hands back naive values otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class AuditBase(DeclarativeBase):
    metadata = metadata


class PendingEvent(AuditBase):
    __tablename__ = "audit_pending"
    # Without AUTOINCREMENT SQLite reuses ids once the queue is emptied; ids must never repeat.
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    entry: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class Leaf(AuditBase):
    __tablename__ = "audit_leaves"

    leaf_index: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    # Which pending row it came from: unique, so no append is ever integrated twice.
    pending_id: Mapped[int] = mapped_column(BigInteger, nullable=False, unique=True)
    entry: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    leaf_hash: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False)
    event_id: Mapped[str] = mapped_column(String(200), nullable=False, index=True)
    event_time: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, index=True)
    action: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    actor_iss: Mapped[str] = mapped_column(String(200), nullable=False)
    actor_sub: Mapped[str] = mapped_column(String(200), nullable=False, index=True)
    tenant: Mapped[str | None] = mapped_column(String(200), nullable=True, index=True)
    voice_id: Mapped[str | None] = mapped_column(String(200), nullable=True, index=True)
    integrated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class Node(AuditBase):
    __tablename__ = "audit_nodes"

    level: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    node_index: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False)


class StoredCheckpoint(AuditBase):
    __tablename__ = "audit_checkpoints"

    tree_size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    root_hash: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False)
    note: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
