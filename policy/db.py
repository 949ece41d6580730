"""The policy domain's single SQLAlchemy ``MetaData`` and declarative base.

Every policy table (consent, protected speakers, ...) is declared on ``PolicyBase`` so that
``migrations/env.py`` lists one metadata object for the whole domain. The naming convention
is the project's (docs/contributing.md): constraint names must be stable because Alembic
migrations refer to them by name.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import BigInteger, DateTime, Integer, MetaData
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

# 64-bit keys on PostgreSQL; SQLite only auto-increments a column declared exactly INTEGER.
AutoId = BigInteger().with_variant(Integer(), "sqlite")


class PolicyBase(DeclarativeBase):
    metadata = metadata


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every backend.

    PostgreSQL stores ``timestamptz``; SQLite drops the offset and hands back naive values, so
    this type refuses naive input and re-attaches UTC on the way out. Comparing a naive and an
    aware datetime raises in Python, which is how expiry checks would otherwise break on SQLite.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column; use policy.db.utcnow()")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)
