"""The audit log's checkpoint signing key and the integrator that signs checkpoints.

At start-up the integrity check runs first (a tampered log stops the gateway; an unreachable
store only leaves it not ready), then the integrator thread integrates pending events and
signs a checkpoint every interval for the app's lifetime.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from audit.checkpoint import SigningKey
from audit.errors import SigningKeyError
from audit.integrator import IntegratorThread
from audit.integrity import check_log_integrity
from gateway.settings import Settings, SettingsError

log = logging.getLogger("clonegate.audit")

DEV_KEY_NAME = "clonegate-dev.invalid/audit"
DEV_KEY_FILE = "audit-dev-signing.key"


def load_audit_signing_key(settings: Settings) -> SigningKey:
    """The key file named in settings; in dev mode only, a key generated once into data_dir."""
    path = settings.audit_signing_key_file
    if path is None:
        if not settings.is_dev:
            raise SettingsError("CLONEGATE_AUDIT_SIGNING_KEY_FILE must name a key file in prod")
        path = settings.data_dir / DEV_KEY_FILE
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w") as handle:
                handle.write(SigningKey.generate(name=DEV_KEY_NAME).encode() + "\n")
    try:
        key = SigningKey.parse(Path(path).read_text())
    except (OSError, SigningKeyError) as exc:
        raise SettingsError(f"CLONEGATE_AUDIT_SIGNING_KEY_FILE {path}: {exc}") from exc
    if not settings.is_dev and key.name == DEV_KEY_NAME:
        raise SettingsError("CLONEGATE_AUDIT_SIGNING_KEY_FILE: the dev audit key is refused in prod")
    return key


def build_integrator(sessions: sessionmaker[Session], *, key: SigningKey, settings: Settings) -> IntegratorThread:
    return IntegratorThread(sessions, key=key, origin=key.name, interval=settings.audit_checkpoint_interval_seconds)


def check_at_start_up(sessions: sessionmaker[Session], key: SigningKey) -> None:
    """A tampered log stops the gateway; an unreachable store only leaves it not ready."""
    try:
        with sessions() as session:
            report = check_log_integrity(session, verifier=key.verifier, origin=key.name)
        log.info("audit log intact", extra={"tree_size": report.tree_size, "pending": report.pending})
    except SQLAlchemyError as exc:
        log.error("audit store unavailable at start-up: %s", exc.__class__.__name__)


AUDIT_LOG_FIX = (
    "the audit integrator could not integrate and sign pending events; check that the database is "
    "reachable and migrated (`clonegate db upgrade`) and that `clonegate audit check` passes"
)
