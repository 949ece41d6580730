"""The schema comes only from migrations: up, down and up again on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from gateway.db import alembic_config, create_db_engine, downgrade, upgrade
from migrations.metadata import target_metadata


def _head(url: str) -> str:
    return ScriptDirectory.from_config(alembic_config(url)).get_current_head()


def _current(url: str) -> str | None:
    engine = create_db_engine(url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def _tables(url: str) -> set[str]:
    engine = create_db_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_upgrade_downgrade_upgrade(database_url):
    upgrade(database_url)
    assert _current(database_url) == _head(database_url)
    tables_at_head = _tables(database_url)

    downgrade(database_url, "base")
    assert _current(database_url) is None
    assert _tables(database_url) == set()

    upgrade(database_url)
    assert _current(database_url) == _head(database_url)
    assert _tables(database_url) == tables_at_head


def test_models_match_migrations(migrated_database_url):
    """Autogenerate finds nothing to do: every model is created by a migration, exactly."""
    engine = create_db_engine(migrated_database_url)
    try:
        with engine.connect() as connection:
            differences = compare_metadata(
                MigrationContext.configure(connection, opts={"compare_type": True}), target_metadata
            )
    finally:
        engine.dispose()
    assert differences == []
