"""Faults injected at every step of the synthesis pipeline: each denies with a specific error,
releases no audio, leaves an audit event when the store is reachable, and the gateway keeps
serving the next request."""

from __future__ import annotations

import dataclasses
import threading
import time
from datetime import UTC, datetime

import numpy as np
import pytest
from sqlalchemy import delete
from sqlalchemy.orm import sessionmaker

from gateway.db import create_db_engine
from gateway.dependencies import gateway_of
from gateway.settings import Settings
from policy.blocklist.models import CohortSpeaker
from policy.blocklist.repository import bump_version
from policy.consent.grants import revoke_consent
from policy.consent.models import Consent
from tests.gateway.conftest import synthesis_replaced
from tests.gateway.synthesis_fixtures import (
    OWNER_ISSUER_SUB,
    FaultEngine,
    audit_events,
    ready_gateway,
    seed_cohort,
    synthesize,
)
from watermark import WatermarkStack

DEAD_DATABASE = "postgresql+psycopg://nobody@127.0.0.1:1/none"


class UnmarkingStack(WatermarkStack):
    """A watermark stack whose embedding silently does nothing."""

    def embed(self, audio, *, sample_rate, payload, require_payload=True):
        return np.array(audio, dtype=np.float32)


@pytest.fixture(scope="module")
def faulty(tmp_path_factory, loaded_models, speech_dir):
    settings = Settings(mode="dev", data_dir=tmp_path_factory.mktemp("faults"), engine_timeout_seconds=15)
    engine = FaultEngine(loaded_models.engine)
    with ready_gateway(settings, dataclasses.replace(loaded_models, engine=engine), speech_dir, reference_clip=2) as (
        client,
        app,
        voice,
    ):
        yield client, app, voice, engine


@pytest.fixture
def healthy_afterwards(faulty, client_token):
    """Every fault test ends by checking that the gateway still serves a normal request."""
    client, app, voice, engine = faulty
    yield
    engine.fault = None
    engine.during_synthesis = None
    app.dependency_overrides.clear()
    response = synthesize(client, client_token, voice)
    assert response.status_code == 200, response.text


def _refused(response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"] == code
    assert not response.headers["content-type"].startswith("audio/")


def _last_event(app, voice):
    return audit_events(app, voice_id=voice.voice_id)[-1][1]


@pytest.mark.parametrize(
    ("fault", "status", "code"),
    [
        ("raise", 502, "engine_request_failed"),
        ("silence", 502, "engine_output_invalid"),
        ("nan", 502, "engine_output_invalid"),
    ],
)
def test_engine_fault_releases_nothing(faulty, client_token, healthy_afterwards, fault, status, code):
    client, app, voice, engine = faulty
    engine.fault = fault
    _refused(synthesize(client, client_token, voice), status, code)
    event = _last_event(app, voice)
    assert (event.action.value, event.reason) == ("request.failed", code)


def test_engine_hanging_past_its_timeout_releases_nothing(faulty, client_token, healthy_afterwards):
    client, app, voice, engine = faulty
    engine.fault = "hang"
    _refused(synthesize(client, client_token, voice), 504, "engine_timeout")
    assert _last_event(app, voice).reason == "engine_timeout"


def test_watermark_that_does_not_verify_releases_nothing(faulty, client_token, healthy_afterwards):
    client, app, voice, _ = faulty
    components = gateway_of(app).components
    broken = UnmarkingStack(list(components.watermark.schemes))
    with synthesis_replaced(app, watermark=broken):
        _refused(synthesize(client, client_token, voice), 503, "watermark_self_check_failed")
    assert _last_event(app, voice).reason == "watermark_self_check_failed"


def test_consent_revoked_while_the_engine_runs_releases_nothing(faulty, client_token, healthy_afterwards):
    client, app, voice, engine = faulty

    def owner_revokes() -> None:
        with gateway_of(app).sessions() as session:
            revoke_consent(
                session,
                consent_id=voice.consent_id,
                owner_iss=gateway_of(app).settings.jwt_issuer,
                owner_sub=OWNER_ISSUER_SUB,
                now=datetime.now(UTC),
            )
            session.commit()
        engine.during_synthesis = None

    engine.during_synthesis = owner_revokes
    try:
        _refused(synthesize(client, client_token, voice), 403, "consent_revoked")
        assert _last_event(app, voice).reason == "consent_revoked"
    finally:
        with gateway_of(app).sessions() as session:
            session.get(Consent, voice.consent_id).revoked_at = None
            session.commit()


def test_blocklist_that_cannot_load_denies(faulty, client_token, speech_dir, healthy_afterwards):
    client, app, voice, _ = faulty
    with gateway_of(app).sessions() as session:
        session.execute(delete(CohortSpeaker))
        bump_version(session)
        session.commit()
    try:
        # The list is polled every 2 s: within that the previous snapshot still answers.
        deadline = time.monotonic() + 5
        while (response := synthesize(client, client_token, voice)).status_code == 200:
            assert time.monotonic() < deadline, "a list that cannot load kept allowing synthesis"
            time.sleep(0.5)
        _refused(response, 503, "blocklist_misconfigured")
        assert _last_event(app, voice).reason == "blocklist_misconfigured"
    finally:
        seed_cohort(app, speech_dir)


def test_database_down_before_admission_denies(faulty, client_token, healthy_afterwards):
    client, app, voice, _ = faulty
    before = len(audit_events(app))
    dead = sessionmaker(bind=create_db_engine(DEAD_DATABASE))
    with synthesis_replaced(app, sessions=dead):
        _refused(synthesize(client, client_token, voice), 503, "database_unavailable")
    assert len(audit_events(app)) == before  # nothing could be written, and nothing was released


class DatabaseDiesAfter:
    """Hands out working sessions for the first `calls`, then sessions on a dead server."""

    def __init__(self, working: sessionmaker, *, calls: int) -> None:
        self._working = working
        self._dead = sessionmaker(bind=create_db_engine(DEAD_DATABASE))
        self._left = calls
        self._lock = threading.Lock()

    def __call__(self):
        with self._lock:
            self._left -= 1
            return self._working() if self._left >= 0 else self._dead()


def test_database_down_after_admission_releases_nothing(faulty, client_token, healthy_afterwards):
    client, app, voice, _ = faulty
    flaky = DatabaseDiesAfter(gateway_of(app).sessions, calls=1)  # admission works, release does not
    with synthesis_replaced(app, sessions=flaky):
        _refused(synthesize(client, client_token, voice), 503, "database_unavailable")
    assert _last_event(app, voice).action.value == "request.admitted"  # the failure could not be written
