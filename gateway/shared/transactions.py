"""Transactions a service opens itself, and audit events that must be durable on their own.

The request dependency (`gateway.db.SessionDep`) commits what a route's service flushed. A service
that needs more than one transaction (synthesis: admission, then release; enrollment: the
challenge is consumed before the checks run) opens them with `transaction`. `commit_write_ahead`
makes an event durable before anything depends on it (the pipeline's `admitted` before the engine
runs); `record_refusal` keeps a refusal on the record after the refused request's own
transaction was rolled back.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from audit.appender import appender_for
from audit.errors import AuditUnavailable
from audit.events import AuditEvent
from audit.store import append_event, confirm_durable
from gateway.errors import DatabaseUnavailable

log = logging.getLogger("clonegate.audit")


@contextmanager
def transaction(sessions: sessionmaker[Session]) -> Iterator[Session]:
    """A session whose work commits when the block ends and rolls back when it raises; a
    database failure is a specific 503, never an internal error."""
    with sessions() as session:
        try:
            yield session
            session.commit()
        except SQLAlchemyError as exc:
            session.rollback()
            raise DatabaseUnavailable(f"the database did not store the change: {type(exc).__name__}") from exc
        except BaseException:
            session.rollback()
            raise


@contextmanager
def database_errors() -> Iterator[None]:
    """A database failure inside a step is a specific 503, not an internal error."""
    try:
        yield
    except SQLAlchemyError as exc:
        raise DatabaseUnavailable(f"the database failed: {type(exc).__name__}") from exc


def commit_write_ahead(session: Session, *, event: AuditEvent) -> int:
    """Append ``event``, commit, and confirm it is stored: call before the engine runs.

    Raises ``AuditUnavailable`` on any store failure, and then nothing may proceed.
    """
    pending_id = append_event(session, event=event)
    try:
        session.commit()
    except SQLAlchemyError as exc:
        session.rollback()
        raise AuditUnavailable(f"the {event.action.value} event could not be committed") from exc
    confirm_durable(session, pending_id=pending_id)
    return pending_id


def record_refusal(sessions: sessionmaker[Session], *, event: AuditEvent) -> None:
    """Commit a refusal event in its own transaction (group-committed with the process's other
    standalone events, audit/appender.py). A store failure here is logged and the caller
    re-raises the original refusal: the request is refused either way."""
    try:
        engine = sessions.kw.get("bind")
        if isinstance(engine, Engine):
            appender_for(engine).append(event)
        else:
            with sessions() as session:
                commit_write_ahead(session, event=event)
    except Exception:  # the store itself may be what failed
        log.error("could not record %s (%s) in the audit log", event.action.value, event.reason, exc_info=True)
