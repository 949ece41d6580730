"""Prod refuses to start on what would only fail later (an unmigrated database, a protected-speaker
list without a cohort, a tampered log, a voice-storage key that opens no stored voice), naming
the command that fixes it; dev warns and starts. A complete prod set-up starts and gets ready."""

from __future__ import annotations

import logging
import os
import secrets
import subprocess
import sys

import pytest
import soundfile
from fastapi.testclient import TestClient
from sqlalchemy import text

from audit.errors import LogIntegrityError
from audit.merkle import leaf_hash
from audit.store import append_event, integrate
from gateway.app import create_app
from gateway.db import create_db_engine, make_session_factory, upgrade
from gateway.dependencies import gateway_of
from gateway.keyfiles import audit_signing_key
from gateway.settings import Settings
from gateway.startup_checks import StartupRefused, latest_revision
from policy.blocklist.repository import add_cohort_speaker
from policy.consent.models import Voice
from policy.consent.storage import create_voice_key
from tests.audit.storage_helpers import event
from tests.gateway.conftest import bearer
from tests.gateway.prod_setup import ProdSetup, make_prod_setup
from tests.gateway.speech import COHORT


def _prod(tmp_path, url: str) -> ProdSetup:
    return make_prod_setup(tmp_path, database_url=url)


def seed_cohort(url: str, *, embedder, speech_dir) -> None:
    engine = create_db_engine(url)
    with make_session_factory(engine)() as session:
        for name in COHORT:
            audio, rate = soundfile.read(speech_dir / f"{name}.wav", dtype="float32")
            add_cohort_speaker(
                session, embedder=embedder, label=name, audio=audio, sample_rate=rate, actor="operator:test"
            )
        session.commit()
    engine.dispose()


def test_prod_refuses_an_empty_database_naming_db_upgrade(tmp_path, database_url, loaded_models):
    prod = _prod(tmp_path, database_url)
    with pytest.raises(StartupRefused) as refused:
        create_app(prod.settings(), models=loaded_models)
    assert "the database has no clonegate schema; run `clonegate db upgrade`" in str(refused.value)


def test_prod_refuses_a_database_below_the_latest_migration(tmp_path, database_url, loaded_models):
    upgrade(database_url, "0004")
    prod = _prod(tmp_path, database_url)
    with pytest.raises(StartupRefused) as refused:
        create_app(prod.settings(), models=loaded_models)
    assert f"at revision 0004, below the latest {latest_revision()}; run `clonegate db upgrade`" in str(refused.value)


def test_prod_refuses_a_protected_speaker_list_without_a_cohort(tmp_path, migrated_database_url, loaded_models):
    prod = _prod(tmp_path, migrated_database_url)
    with pytest.raises(StartupRefused) as refused:
        create_app(prod.settings(), models=loaded_models)
    message = str(refused.value)
    assert "needs at least 5 speakers, got 0" in message
    assert "`clonegate blocklist cohort add FILE...`" in message


def test_serve_refuses_an_unmigrated_database_in_one_line(tmp_path):
    prod = _prod(tmp_path, f"sqlite:///{tmp_path / 'empty.db'}")
    result = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "serve"],
        env={**os.environ, **prod.env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "clonegate: refusing to start in prod mode: the database has no clonegate schema; "
        f"run `clonegate db upgrade` (to revision {latest_revision()})"
    ]


def test_dev_warns_about_an_unmigrated_database_and_starts(tmp_path, loaded_models, caplog):
    settings = Settings(mode="dev", data_dir=tmp_path / "data")
    with caplog.at_level(logging.WARNING, logger="clonegate.startup"):
        create_app(settings, models=loaded_models)
    assert any("run `clonegate db upgrade`" in record.getMessage() for record in caplog.records)


@pytest.fixture
def ready_prod(tmp_path, migrated_database_url, loaded_models, speech_dir) -> ProdSetup:
    seed_cohort(migrated_database_url, embedder=loaded_models.embedder, speech_dir=speech_dir)
    return _prod(tmp_path, migrated_database_url)


def test_prod_with_generated_keys_starts_and_gets_ready(ready_prod, loaded_models):
    app = create_app(ready_prod.settings(), models=loaded_models)
    with TestClient(app) as client:
        assert gateway_of(app).components.executor.wait_ready(120)
        assert client.get("/readyz").json() == {"status": "ready"}
        me = client.get("/v1/me", headers=bearer(ready_prod.token()))
        assert me.status_code == 200, me.text
        assert client.get("/v1/audit/public-key").text.startswith("voice.example.test/audit+")


def test_prod_refuses_a_tampered_audit_log(ready_prod, loaded_models):
    settings = ready_prod.settings()
    key = audit_signing_key(settings)
    engine = create_db_engine(settings.resolved_database_url)
    with make_session_factory(engine)() as session:
        for i in range(3):
            append_event(session, event=event(i))
        integrate(session, key=key, origin=key.name)
        # The owner of the database can drop the append-only triggers; the start-up check still sees it.
        postgres = settings.resolved_database_url.startswith("postgresql")
        session.execute(
            text(
                "DROP TRIGGER audit_leaves_append_only ON audit_leaves"
                if postgres
                else "DROP TRIGGER audit_leaves_no_update"
            )
        )
        session.execute(
            text("UPDATE audit_leaves SET entry = :e, leaf_hash = :h WHERE leaf_index = 1"),
            {"e": b"{}", "h": leaf_hash(b"{}")},
        )
        session.commit()
    engine.dispose()
    app = create_app(settings, models=loaded_models)
    with pytest.raises(LogIntegrityError), TestClient(app):
        pass


def test_prod_refuses_a_voice_storage_key_that_opens_no_stored_voice(ready_prod, loaded_models):
    settings = ready_prod.settings()
    engine = create_db_engine(settings.resolved_database_url)
    with make_session_factory(engine)() as session:
        session.add(
            Voice(id="b" * 32, owner_iss="https://idp", owner_sub="olive", owner_name="Olive", embedder_name="x")
        )
        session.flush()
        create_voice_key(session, voice_id="b" * 32, key_encryption_key=secrets.token_bytes(32))  # some other key
        session.commit()
    engine.dispose()
    with pytest.raises(StartupRefused) as refused:
        create_app(settings, models=loaded_models)
    assert "CLONEGATE_VOICE_STORAGE_KEY_FILE: the data key of voice" in str(refused.value)
    assert "`clonegate keys rewrap-voices --old-key OLD_FILE`" in str(refused.value)
