"""What must hold before the gateway serves, each failure saying which command fixes it.

Prod refuses to start on any of them (`StartupRefused`, printed as one line by `clonegate
serve`); dev logs a warning and starts, so `./bootstrap serve` and the tests keep their
step-by-step set-up. The audit log's integrity check runs when the app starts
(`gateway/audit_log/signing.py`) and stops it in every mode.
"""

from __future__ import annotations

import logging
from functools import cache

from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from gateway.db import alembic_config
from gateway.settings import Settings, SettingsError
from policy.blocklist.live import LiveBlocklist
from policy.consent.storage import check_key_encryption_key
from policy.errors import BlocklistMisconfigured, VoiceKeyUnwrapFailed

log = logging.getLogger("clonegate.startup")


class StartupRefused(SettingsError):
    """Prod mode will not start: the message says what is wrong and which command fixes it."""


@cache
def latest_revision() -> str:
    heads = ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads()
    if len(heads) != 1:  # the chain is linear by rule; two heads is a broken checkout
        raise StartupRefused(f"the migrations have {len(heads)} heads {heads}; expected one")
    return heads[0]


def schema_problem(db_engine: Engine) -> str | None:
    """Why the database cannot serve this version of clonegate, or None."""
    latest = latest_revision()
    try:
        # Read directly, not through alembic's MigrationContext, which logs at INFO on every start.
        with db_engine.connect() as connection:
            stamped = inspect(connection).has_table("alembic_version")
            current = tuple(connection.scalars(text("SELECT version_num FROM alembic_version"))) if stamped else ()
    except SQLAlchemyError as exc:
        return f"cannot reach the database (CLONEGATE_DATABASE_URL): {type(exc).__name__}"
    if not current:
        return f"the database has no clonegate schema; run `clonegate db upgrade` (to revision {latest})"
    if current == (latest,):
        return None
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    known = {revision.revision for revision in script.walk_revisions()}
    if any(revision not in known for revision in current):
        return (
            f"the database is at revision {', '.join(current)}, which this version of clonegate does not know "
            f"(latest {latest}): run the clonegate version that migrated it"
        )
    return f"the database is at revision {', '.join(current)}, below the latest {latest}; run `clonegate db upgrade`"


def cohort_problem(blocklist: LiveBlocklist) -> str | None:
    """Why the protected-speaker list cannot decide anything (no cohort, most often), or None."""
    try:
        blocklist.refresh(force=True)
    except BlocklistMisconfigured as exc:
        return (
            f"the protected-speaker list cannot run: {exc}; add speakers known not to be protected with "
            "`clonegate blocklist cohort add FILE...` (one recording per speaker, at least 5)"
        )
    except SQLAlchemyError as exc:
        return f"cannot read the protected-speaker list: {type(exc).__name__}"
    return None


def voice_storage_problem(sessions: sessionmaker[Session], *, key_encryption_key: bytes) -> str | None:
    """Why the configured voice-storage key cannot open the stored voices, or None."""
    try:
        with sessions() as session:
            check_key_encryption_key(session, key_encryption_key=key_encryption_key)
    except VoiceKeyUnwrapFailed as exc:
        return (
            f"CLONEGATE_VOICE_STORAGE_KEY_FILE: {exc}; after changing the key, re-wrap the stored keys with "
            "`clonegate keys rewrap-voices --old-key OLD_FILE`"
        )
    except SQLAlchemyError:
        return None  # the schema check has said what is wrong with the database
    return None


def enforce(settings: Settings, problem: str | None) -> None:
    """Refuse to start in prod; warn in dev."""
    if problem is None:
        return
    if settings.is_dev:
        log.warning("%s (dev mode starts anyway; prod refuses)", problem)
        return
    raise StartupRefused(f"refusing to start in prod mode: {problem}")
