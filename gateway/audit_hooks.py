"""How the gateway writes decisions into the audit log outside a request's own transaction.

`commit_write_ahead` makes an event durable before anything depends on it (the pipeline's
`admitted` before the engine runs); `record_refusal` keeps a refusal on the record after the
refused request's own transaction was rolled back.
"""

from __future__ import annotations

import logging

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from audit.errors import AuditUnavailable
from audit.events import AuditEvent
from audit.store import append_event, confirm_durable

log = logging.getLogger("clonegate.audit")


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
    """Commit a refusal event in its own transaction. A store failure here is logged and the
    caller re-raises the original refusal: the request is refused either way."""
    try:
        with sessions() as session:
            commit_write_ahead(session, event=event)
    except Exception:  # the store itself may be what failed
        log.error("could not record %s (%s) in the audit log", event.action.value, event.reason, exc_info=True)
