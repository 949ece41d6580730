"""The replicas' own tables (their MetaData is listed in migrations/metadata.py; migration 0006).

* ``gateway_replicas`` - one row per gateway process since it started: its heartbeat, and on
                         PostgreSQL the advisory lock key its database session holds while it lives.
* ``request_leases``   - one row per admitted synthesis request that has no outcome yet: the
                         replica running it, whether it still holds a reserved consent use, and
                         what the `request.abandoned` event needs if that replica dies with it.

A lease row exists exactly while its request has no outcome: the transaction that records the
outcome deletes it, so two replicas can never both record one (whoever deletes the row first
does).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, MetaData, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from policy.db import NAMING_CONVENTION, AutoId, UTCDateTime

metadata = MetaData(naming_convention=NAMING_CONVENTION)


class ReplicasBase(DeclarativeBase):
    metadata = metadata


class Replica(ReplicasBase):
    __tablename__ = "gateway_replicas"
    # Ids are never reused: a restarted process must not inherit a dead one's leases.
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200))  # host and process id, for people reading the table
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class RequestLease(ReplicasBase):
    __tablename__ = "request_leases"

    request_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    replica_id: Mapped[int] = mapped_column(ForeignKey("gateway_replicas.id"), index=True)
    voice_id: Mapped[str] = mapped_column(String(32))
    consent_id: Mapped[str | None] = mapped_column(String(32), nullable=True)  # None: the owner's own use
    # True from admission until the first release spends the use; an outcome without a release
    # gives a reserved use back to the consent.
    use_reserved: Mapped[bool] = mapped_column(Boolean)
    actor_iss: Mapped[str] = mapped_column(String(300))
    actor_sub: Mapped[str] = mapped_column(String(300))
    actor_role: Mapped[str] = mapped_column(String(32))
    actor_tenant: Mapped[str | None] = mapped_column(String(300), nullable=True)
    text_sha256: Mapped[str] = mapped_column(String(64))
    admitted_at: Mapped[datetime] = mapped_column(UTCDateTime())
