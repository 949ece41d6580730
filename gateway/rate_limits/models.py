"""The rate limiter's tables (own MetaData; the schema itself comes from a migration).

* ``rate_limit_usage``    - what each budget spent in one window: requests, or milliseconds of
                            audio. One row per (bucket, window); every replica adds to the same row.
* ``rate_limit_refusals`` - refusals of one bucket in one minute, waiting to be written to the
                            audit log as one `request.rate_limited` event, then deleted.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, MetaData, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from audit.models import NAMING_CONVENTION, UTCDateTime

metadata = MetaData(naming_convention=NAMING_CONVENTION)

# `<limit>:<scope>:<32 hex of sha256(identity)>`: fixed length whatever the tenant or subject.
BUCKET = String(96)


class RateLimitBase(DeclarativeBase):
    metadata = metadata


class Usage(RateLimitBase):
    __tablename__ = "rate_limit_usage"
    __table_args__ = (Index("ix_rate_limit_usage_expires_at", "expires_at"),)

    bucket: Mapped[str] = mapped_column(BUCKET, primary_key=True)
    # Seconds since the epoch at which the window starts, and at which it may be deleted.
    window_start: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    expires_at: Mapped[int] = mapped_column(BigInteger, nullable=False)
    used: Mapped[int] = mapped_column(BigInteger, nullable=False)


class Refusals(RateLimitBase):
    __tablename__ = "rate_limit_refusals"
    __table_args__ = (Index("ix_rate_limit_refusals_window_start", "window_start"),)

    bucket: Mapped[str] = mapped_column(BUCKET, primary_key=True)
    window_start: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    limit_name: Mapped[str] = mapped_column(String(64), nullable=False)
    count: Mapped[int] = mapped_column(BigInteger, nullable=False)
    # The first refused caller of the window: the event's actor.
    actor_iss: Mapped[str] = mapped_column(String(200), nullable=False)
    actor_sub: Mapped[str] = mapped_column(String(200), nullable=False)
    actor_role: Mapped[str] = mapped_column(String(32), nullable=False)
    tenant: Mapped[str | None] = mapped_column(String(200), nullable=True)
    first_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    last_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
