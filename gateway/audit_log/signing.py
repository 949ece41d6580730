"""The integrator that signs the audit log's checkpoints, and the log's check at start-up (the
signing key is read by gateway/keyfiles.py).

At start-up the integrity check runs first (a tampered log stops the gateway; an unreachable
store only leaves it not ready), then the integrator thread integrates pending events and
signs a checkpoint every interval for the app's lifetime.
"""

from __future__ import annotations

import logging

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from audit.checkpoint import SigningKey
from audit.errors import AuditError
from audit.integrator import IntegratorThread
from audit.integrity import check_log_integrity
from gateway.settings import Settings
from gateway.startup_checks import StartupRefused

log = logging.getLogger("clonegate.audit")


def build_integrator(sessions: sessionmaker[Session], *, key: SigningKey, settings: Settings) -> IntegratorThread:
    return IntegratorThread(sessions, key=key, origin=key.name, interval=settings.audit_checkpoint_interval_seconds)


def check_at_start_up(sessions: sessionmaker[Session], key: SigningKey, *, settings: Settings) -> None:
    """A tampered log stops the gateway. A store that cannot be read stops it in prod; in dev it
    only leaves the gateway not ready."""
    try:
        with sessions() as session:
            report = check_log_integrity(session, verifier=key.verifier, origin=key.name)
        log.info("audit log intact", extra={"tree_size": report.tree_size, "pending": report.pending})
    except AuditError as exc:
        log.critical("refusing to start: the audit log failed its integrity check (`clonegate audit check`): %s", exc)
        raise
    except SQLAlchemyError as exc:
        if not settings.is_dev:
            raise StartupRefused(
                f"refusing to start in prod mode: the audit log cannot be checked: {exc.__class__.__name__}"
            ) from exc
        log.error("audit store unavailable at start-up: %s", exc.__class__.__name__)


AUDIT_LOG_FIX = (
    "the audit integrator could not integrate and sign pending events; check that the database is "
    "reachable and migrated (`clonegate db upgrade`) and that `clonegate audit check` passes"
)
