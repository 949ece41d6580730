"""Every admitted request gets exactly one outcome, and only a release spends a consent use.

Two replicas share one PostgreSQL database here: the app's own, and a second `ThisReplica` with
its own synthesis service on the same components, as a second gateway process would have. A
replica's death is what PostgreSQL sees of it: its session ended (pg_terminate_backend), so its
advisory lock is free.
"""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, text, update

from audit.events import Action
from engine.errors import EngineBusy
from engine.interface import CancelToken
from gateway.auth import Principal, Role
from gateway.dependencies import gateway_of
from gateway.replicas.leases import LeaseLost
from gateway.replicas.models import Replica, RequestLease
from gateway.replicas.replica import REPLICA_LOCK_CLASS, ThisReplica
from gateway.settings import Settings
from gateway.synthesis.service import StepTimes, SynthesisService
from gateway.synthesis.steps import SynthesisRequest
from policy.consent.models import Consent, UsageRecord
from policy.errors import ConsentRevoked, ConsentUsesExhausted
from tests.gateway.conftest import bearer
from tests.gateway.synthesis_fixtures import (
    OWNER_ISSUER_SUB,
    PURPOSE,
    TENANT,
    TEXT,
    FaultEngine,
    audit_events,
    consent_uses,
    ready_gateway,
    synthesize,
)

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def two_replicas(tmp_path_factory, loaded_models, speech_dir, postgres_databases):
    settings = Settings(
        mode="dev",
        data_dir=tmp_path_factory.mktemp("outcomes"),
        database_url=postgres_databases.migrated(),
        engine_max_concurrency=1,
        engine_max_queue=1,
        # The tests sweep themselves; the app's own beat comes rarely, so it cannot get ahead of them.
        replica_heartbeat_seconds=60,
        replica_lease_seconds=300,
    )
    engine = FaultEngine(loaded_models.engine)
    with ready_gateway(settings, dataclasses.replace(loaded_models, engine=engine), speech_dir, reference_clip=3) as (
        client,
        app,
        voice,
    ):
        yield client, app, voice, engine


@pytest.fixture
def grantee_token(hs256_token):
    return hs256_token(sub="studio-1", role=["client"], tenant=TENANT)


@pytest.fixture
def other(two_replicas):
    """A second replica on the same database, and the synthesis service it runs requests with."""
    _, app, _, _ = two_replicas
    gateway = gateway_of(app)
    replica = ThisReplica(sessions=gateway.sessions, db_engine=gateway.db_engine)
    yield (
        replica,
        SynthesisService(
            sessions=gateway.sessions,
            components=gateway.components,
            rate_limiter=gateway.rate_limiter,
            replica=replica,
        ),
    )
    replica.stop()


def _client_principal(settings: Settings) -> Principal:
    return Principal(
        issuer=settings.jwt_issuer,
        subject="studio-1",
        roles=frozenset({Role.CLIENT}),
        tenant=TENANT,
        display_name=None,
        identity_verified=False,
    )


def _request(voice) -> SynthesisRequest:
    return SynthesisRequest(voice_id=voice.voice_id, text=TEXT, language="en", purpose=PURPOSE)


def _admit(service: SynthesisService, app, voice):
    """Admitted on ``service``'s replica and left running there (its engine place given back)."""
    admission = service.admit(
        principal=_client_principal(gateway_of(app).settings), request=_request(voice), times=StepTimes()
    )
    admission.give_back_engine_slot()
    return admission


def _outcomes(app, request_id: str) -> list:
    return [
        event for _, event in audit_events(app, request_id=request_id) if event.action is not Action.REQUEST_ADMITTED
    ]


def _kill(app, replica: ThisReplica) -> None:
    """What the database sees when the replica's process dies: its session ends."""
    with gateway_of(app).db_engine.connect() as connection:
        ended = connection.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_locks "
                "WHERE locktype = 'advisory' AND classid = :class AND objid = :object"
            ),
            {"class": REPLICA_LOCK_CLASS, "object": replica.id},
        ).all()
    assert ended == [(True,)]


def test_restart_closes_abandoned_requests_and_returns_their_uses(two_replicas, other):
    _, app, voice, _ = two_replicas
    replica, service = other
    before = consent_uses(app, voice.consent_id)
    admission = _admit(service, app, voice)
    assert consent_uses(app, voice.consent_id) == before + 1  # reserved while it runs

    _kill(app, replica)
    survivor = gateway_of(app).replica
    survivor.sweep()  # what a replica does at start-up and with every heartbeat

    [outcome] = _outcomes(app, admission.request_id)
    assert (outcome.action, outcome.reason) == (Action.REQUEST_ABANDONED, "gateway_restarted")
    assert outcome.subjects.consent_id == voice.consent_id
    assert consent_uses(app, voice.consent_id) == before
    with gateway_of(app).sessions() as session:
        assert session.get(RequestLease, admission.request_id) is None


def test_replicas_never_close_each_others_live_requests(two_replicas, other):
    _, app, voice, _ = two_replicas
    replica, service = other
    admission = _admit(service, app, voice)
    gateway_of(app).replica.sweep()
    assert _outcomes(app, admission.request_id) == []  # alive: its lock is held, its heartbeat fresh
    service.replica.sweep()  # nor does a replica close its own
    assert _outcomes(app, admission.request_id) == []

    # Alive but wedged: no heartbeat for longer than the lease.
    stale = datetime.now(UTC) - timedelta(seconds=2 * gateway_of(app).replica.lease_seconds)
    with gateway_of(app).sessions() as session:
        session.execute(update(Replica).where(Replica.id == replica.id).values(heartbeat_at=stale))
        session.commit()
    gateway_of(app).replica.sweep()
    [outcome] = _outcomes(app, admission.request_id)
    assert (outcome.action, outcome.reason) == (Action.REQUEST_ABANDONED, "lease_expired")

    # The wedged replica wakes up: it may not release, nor record a second outcome.
    with pytest.raises(LeaseLost):
        service.release_whole(
            principal=_client_principal(gateway_of(app).settings),
            request=_request(voice),
            admission=admission,
            encoding=service.file_encoding("wav"),
            cancel=CancelToken(),
            times=StepTimes(),
        )
    assert [event.action for event in _outcomes(app, admission.request_id)] == [Action.REQUEST_ABANDONED]


def test_engine_busy_refusal_costs_no_use(two_replicas, grantee_token):
    client, app, voice, _ = two_replicas
    executor = gateway_of(app).components.executor
    before = consent_uses(app, voice.consent_id)
    admitted_before = len([e for _, e in audit_events(app) if e.action is Action.REQUEST_ADMITTED])
    places = [executor.reserve(), executor.reserve()]  # the engine is busy: its one job and one waiting
    try:
        with pytest.raises(EngineBusy):
            executor.reserve()
        response = synthesize(client, grantee_token, voice)
    finally:
        for place in places:
            place.release()
    assert response.status_code == 429 and response.json()["error"] == "engine_busy"
    assert int(response.headers["retry-after"]) >= 1
    assert consent_uses(app, voice.consent_id) == before
    events = [e for _, e in audit_events(app)]
    assert len([e for e in events if e.action is Action.REQUEST_ADMITTED]) == admitted_before  # refused before
    assert (events[-1].action, events[-1].reason) == (Action.REQUEST_DENIED, "engine_busy")
    assert synthesize(client, grantee_token, voice).status_code == 200  # the places were given back


def test_engine_failure_returns_the_use_and_leaves_no_usage(two_replicas, grantee_token, hs256_token):
    client, app, voice, engine = two_replicas
    owner = hs256_token(sub=OWNER_ISSUER_SUB, role=["owner"])
    usage_before = client.get(f"/v1/voices/{voice.voice_id}/usage", headers=bearer(owner)).json()["usage"]
    before = consent_uses(app, voice.consent_id)
    engine.fault = "raise"
    try:
        response = synthesize(client, grantee_token, voice)
    finally:
        engine.fault = None
    assert response.status_code == 502, response.text
    assert consent_uses(app, voice.consent_id) == before
    assert client.get(f"/v1/voices/{voice.voice_id}/usage", headers=bearer(owner)).json()["usage"] == usage_before
    failed = audit_events(app, voice_id=voice.voice_id)[-1][1]
    assert (failed.action, failed.reason) == (Action.REQUEST_FAILED, "engine_request_failed")

    released = synthesize(client, grantee_token, voice)
    assert released.status_code == 200
    assert consent_uses(app, voice.consent_id) == before + 1  # a release spends it
    usage = client.get(f"/v1/voices/{voice.voice_id}/usage", headers=bearer(owner)).json()["usage"]
    assert usage[-1]["audit_index"] == int(released.headers["x-clonegate-audit-id"])


def test_concurrent_admissions_never_reserve_more_uses_than_granted(two_replicas):
    _, app, voice, _ = two_replicas
    gateway = gateway_of(app)
    with gateway.sessions() as session:
        consent = session.get(Consent, voice.consent_id)
        consent.max_uses = consent.uses + 2
        session.commit()
    service = gateway.services.synthesis
    executor = gateway.components.executor
    executor.max_queue = 16  # the engine queue is not what this test is about
    try:

        def attempt(_: int):
            try:
                return _admit(service, app, voice)
            except ConsentUsesExhausted:
                return None

        with ThreadPoolExecutor(max_workers=6) as pool:
            admitted = [a for a in pool.map(attempt, range(6)) if a is not None]
        assert len(admitted) == 2
        gateway.replica.drain(grace_seconds=0)  # a shutdown closes them and gives their uses back
        for admission in admitted:
            [outcome] = _outcomes(app, admission.request_id)
            assert (outcome.action, outcome.reason) == (Action.REQUEST_CANCELLED, "shutdown")
    finally:
        executor.max_queue = 1
        gateway.replica.draining = False
        with gateway.sessions() as session:
            session.get(Consent, voice.consent_id).max_uses = 1000
            session.commit()
    with gateway.sessions() as session:
        assert session.scalars(select(RequestLease).where(RequestLease.replica_id == gateway.replica.id)).all() == []
        released = session.scalar(select(func.count()).where(UsageRecord.consent_id == voice.consent_id))
        assert session.get(Consent, voice.consent_id).uses == released  # only releases spent uses


def test_revocation_on_one_replica_stops_the_other_at_once(two_replicas, other, hs256_token):
    """Consent is read from the database at admission and before release: no replica caches it."""
    client, app, voice, _ = two_replicas
    _, service = other
    in_flight = _admit(service, app, voice)
    owner = hs256_token(sub=OWNER_ISSUER_SUB, role=["owner"])
    try:
        revoked = client.post(f"/v1/consents/{voice.consent_id}/revoke", headers=bearer(owner))
        assert revoked.status_code == 200, revoked.text
        with pytest.raises(ConsentRevoked):
            _admit(service, app, voice)
        with pytest.raises(ConsentRevoked):
            service.release_whole(
                principal=_client_principal(gateway_of(app).settings),
                request=_request(voice),
                admission=in_flight,
                encoding=service.file_encoding("wav"),
                cancel=CancelToken(),
                times=StepTimes(),
            )
    finally:
        with gateway_of(app).sessions() as session:
            session.get(Consent, voice.consent_id).revoked_at = None
            session.commit()


def test_a_replica_whose_database_session_ended_takes_its_lock_again(two_replicas, other):
    """After a database restart (every session ended) a live replica is not taken for dead
    for longer than one heartbeat: it takes its lock again."""
    _, app, voice, _ = two_replicas
    _, service = other
    survivor = gateway_of(app).replica
    admission = _admit(service, app, voice)
    _kill(app, service.replica)
    service.replica.heartbeat()  # the replica's next beat
    survivor.sweep()
    assert _outcomes(app, admission.request_id) == []
    with gateway_of(app).db_engine.connect() as connection:
        held = connection.execute(
            text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = :class AND objid = :object"),
            {"class": REPLICA_LOCK_CLASS, "object": service.replica.id},
        ).scalar_one()
    assert held == 1
    service.replica.drain(grace_seconds=0)


def test_stream_cancelled_before_its_first_byte_gives_its_use_back(two_replicas):
    _, app, voice, _ = two_replicas
    service = gateway_of(app).services.synthesis
    before = consent_uses(app, voice.consent_id)
    stream = service.open_stream(
        principal=_client_principal(gateway_of(app).settings),
        request=_request(voice),
        encoding=service.stream_encoding("wav"),
        cancel=CancelToken(),
    )
    assert consent_uses(app, voice.consent_id) == before + 1
    stream.close()  # the client went away before any chunk was produced
    [outcome] = _outcomes(app, stream.admission.request_id)
    assert (outcome.action, outcome.reason) == (Action.REQUEST_CANCELLED, "client_disconnected")
    assert consent_uses(app, voice.consent_id) == before
    assert gateway_of(app).components.executor.in_flight == 0  # its engine place was given back too
