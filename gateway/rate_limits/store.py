"""Repository functions over the rate limiter's tables: one statement each, the caller commits.

Every replica adds to the same row of a (bucket, window), so the limits hold across replicas: the
conditional upsert below is atomic in PostgreSQL (the row lock serialises concurrent adds, and
the condition is evaluated on the latest committed value) and in SQLite (one writer).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from gateway.rate_limits.models import Refusals, Usage


def _insert(session: Session, model: type[Usage] | type[Refusals]) -> Any:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(model)
    if dialect == "sqlite":
        return sqlite.insert(model)
    raise NotImplementedError(f"rate limits need PostgreSQL or SQLite, not {dialect}")


def add_within(
    session: Session, *, bucket: str, window_start: int, expires_at: int, amount: int, ceiling: int
) -> int | None:
    """Add ``amount`` to the window's use unless that would pass ``ceiling``; the new use, or None
    when refused (nothing added). ``amount=0`` with ``ceiling=limit-1`` asks "is any left?"."""
    statement = _insert(session, Usage).values(
        bucket=bucket, window_start=window_start, expires_at=expires_at, used=amount
    )
    statement = statement.on_conflict_do_update(
        index_elements=[Usage.bucket, Usage.window_start],
        set_={"used": Usage.used + amount},
        where=Usage.used + amount <= ceiling,
    ).returning(Usage.used)
    used = session.execute(statement).scalar_one_or_none()
    return None if used is None else int(used)


def add(session: Session, *, bucket: str, window_start: int, expires_at: int, amount: int) -> None:
    """Add ``amount`` whatever the use (spent audio: it has already been released)."""
    statement = _insert(session, Usage).values(
        bucket=bucket, window_start=window_start, expires_at=expires_at, used=amount
    )
    session.execute(
        statement.on_conflict_do_update(
            index_elements=[Usage.bucket, Usage.window_start], set_={"used": Usage.used + amount}
        )
    )


@dataclass(frozen=True)
class RefusedCaller:
    iss: str
    sub: str
    role: str
    tenant: str | None


def count_refusal(
    session: Session, *, bucket: str, window_start: int, limit_name: str, caller: RefusedCaller, now: datetime
) -> None:
    """One more refusal of ``bucket`` in the minute starting at ``window_start``."""
    statement = _insert(session, Refusals).values(
        bucket=bucket,
        window_start=window_start,
        limit_name=limit_name,
        count=1,
        actor_iss=caller.iss,
        actor_sub=caller.sub,
        actor_role=caller.role,
        tenant=caller.tenant,
        first_at=now,
        last_at=now,
    )
    session.execute(
        statement.on_conflict_do_update(
            index_elements=[Refusals.bucket, Refusals.window_start],
            set_={"count": Refusals.count + 1, "last_at": now},
        )
    )


@dataclass(frozen=True)
class FinishedWindow:
    limit_name: str
    count: int
    caller: RefusedCaller
    first_at: datetime
    last_at: datetime


def take_finished(session: Session, *, before: int) -> Sequence[FinishedWindow]:
    """Remove and return the refusal counts of windows that started before ``before``.

    A DELETE ... RETURNING, so that of several replicas sweeping at once each row goes to exactly
    one (the others' DELETE waits for its commit and then finds the row gone).
    """
    rows = session.execute(
        delete(Refusals)
        .where(Refusals.window_start < before)
        .returning(
            Refusals.limit_name,
            Refusals.count,
            Refusals.actor_iss,
            Refusals.actor_sub,
            Refusals.actor_role,
            Refusals.tenant,
            Refusals.first_at,
            Refusals.last_at,
        )
    ).all()
    return [
        FinishedWindow(
            limit_name=limit_name,
            count=int(count),
            caller=RefusedCaller(iss=iss, sub=sub, role=role, tenant=tenant),
            first_at=first_at,
            last_at=last_at,
        )
        for limit_name, count, iss, sub, role, tenant, first_at, last_at in rows
    ]


def prune_usage(session: Session, *, now: int) -> int:
    """Delete windows that ended; the number deleted."""
    result = session.execute(delete(Usage).where(Usage.expires_at < now))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
