"""Database engine, sessions and migrations.

The request dependency (gateway/dependencies.py) commits when the handler returns and rolls back
when it raises; domain code only flushes. The schema is created by Alembic migrations and
nothing else.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.orm import Session, sessionmaker

import migrations
from gateway.readiness import NotReady

MIGRATIONS_DIR = Path(migrations.__file__).resolve().parent


def create_db_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers proceed while the single writer commits; foreign keys are off by default.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


def check_reachable(engine: Engine) -> bool:
    """Readiness: the database answers (the driver's own words when it does not)."""
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:  # any driver error means "not ready"
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        raise NotReady(
            f"cannot reach the {engine.dialect.name} database: {reason[0] if reason else type(exc).__name__}"
        ) from exc
    return True


def schema_check(engine: Engine) -> Callable[[], bool]:
    """Readiness: the schema is at the migrations' head (a fresh database has none yet)."""
    head = ScriptDirectory.from_config(alembic_config(str(engine.url))).get_current_head()

    def check() -> bool:
        try:
            with engine.connect() as connection:
                current = MigrationContext.configure(connection).get_current_revision()
        except Exception as exc:  # the `database` check names the driver's error
            raise NotReady("unknown until the database can be reached") from exc
        if current != head:
            found = f"is at revision {current}" if current else "has no schema"
            raise NotReady(f"the database {found}; this gateway needs revision {head}")
        return True

    return check


DATABASE_FIX = "start the database server, or correct CLONEGATE_DATABASE_URL"
SCHEMA_FIX = "run `clonegate db upgrade` with the same CLONEGATE_DATABASE_URL"


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # `%` is alembic's interpolation character; URLs may contain it (escaped passwords).
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    _ensure_sqlite_folder(url)
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    command.downgrade(alembic_config(url), revision)


def _ensure_sqlite_folder(url: str) -> None:
    prefix = "sqlite:///"
    if url.startswith(prefix) and url != prefix + ":memory:":
        Path(url[len(prefix) :]).parent.mkdir(parents=True, exist_ok=True)
