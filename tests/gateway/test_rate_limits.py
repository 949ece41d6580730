"""Rate limits and quotas: shared by replicas through one database, answered 429 with Retry-After,
and a flood of refusals recorded as one audit event per budget and minute."""

from __future__ import annotations

import io
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
import soundfile
from fastapi.testclient import TestClient
from sqlalchemy import select

from audit.events import Action, AuditEvent
from audit.models import Leaf, PendingEvent
from gateway.app import create_app
from gateway.auth import Principal, Role
from gateway.db import create_db_engine, make_session_factory, upgrade
from gateway.dependencies import gateway_of, synthesis_service
from gateway.rate_limits.limiter import RateLimited, RateLimiter, RequestKind
from gateway.rate_limits.models import Usage
from gateway.rate_limits.reporting import report_finished_windows
from gateway.settings import LimitSet, RateLimits, Settings
from gateway.synthesis.service import SynthesisService
from tests.gateway.conftest import bearer
from tests.gateway.synthesis_fixtures import PURPOSE, TEXT, audit_events

# A fixed moment 10 s into a minute (and 10 s into a UTC day): windows are computed from it.
NOW = 1_799_971_210.0
NOISE = b"RIFF\x00\x00\x00\x00WAVEfmt garbage"  # admitted detection requests end 422: cheap


def client_of(tenant: str, sub: str) -> Principal:
    return Principal(
        issuer="https://issuer.test",
        subject=sub,
        roles=frozenset({Role.CLIENT}),
        tenant=tenant,
        display_name=None,
        identity_verified=False,
    )


@pytest.fixture
def sessions(migrated_database_url):
    engine = create_db_engine(migrated_database_url)
    yield make_session_factory(engine)
    engine.dispose()


def limiter(sessions, limits: RateLimits, *, now: float = NOW) -> RateLimiter:
    return RateLimiter(sessions=sessions, limits=limits, anonymous_detection_per_minute=10, clock=lambda: now)


def events(sessions, action: Action) -> list[AuditEvent]:
    with sessions() as session:
        entries = [bytes(e) for e in session.scalars(select(PendingEvent.entry))]
        entries += [bytes(e) for e in session.scalars(select(Leaf.entry))]
    parsed = [AuditEvent.from_canonical_bytes(entry) for entry in entries]
    return [event for event in parsed if event.action is action]


TENANT_OF_THREE = RateLimits(tenant=LimitSet(synthesis_requests_per_minute=3), subject=LimitSet())


def test_tenant_budget_is_shared_by_its_subjects_and_replicas(sessions):
    """Two replicas (two limiters on one database): the tenant's 3 per minute, whoever asks where."""
    replicas = [limiter(sessions, TENANT_OF_THREE), limiter(sessions, TENANT_OF_THREE)]
    replicas[0].admit(client_of("acme", "studio-1"), RequestKind.SYNTHESIS)
    replicas[1].admit(client_of("acme", "studio-2"), RequestKind.SYNTHESIS)
    replicas[0].admit(client_of("acme", "studio-3"), RequestKind.SYNTHESIS)
    with pytest.raises(RateLimited) as refused:
        replicas[1].admit(client_of("acme", "studio-1"), RequestKind.SYNTHESIS)
    assert refused.value.status == 429 and refused.value.code == "rate_limited"
    assert refused.value.headers == {"Retry-After": "50"}  # the minute ends 50 s after NOW
    # Another tenant, and the same tenant's other kinds of request, have budgets of their own.
    replicas[1].admit(client_of("globex", "studio-1"), RequestKind.SYNTHESIS)
    replicas[1].admit(client_of("acme", "studio-1"), RequestKind.DETECTION)
    # The next minute starts afresh.
    limiter(sessions, TENANT_OF_THREE, now=NOW + 60).admit(client_of("acme", "studio-1"), RequestKind.SYNTHESIS)


def test_concurrent_requests_on_two_replicas_never_pass_the_budget(sessions):
    """16 threads on two limiters ask 64 times at once: exactly the budget gets through."""
    limits = RateLimits(tenant=LimitSet(detection_requests_per_minute=20), subject=LimitSet())
    replicas = [limiter(sessions, limits), limiter(sessions, limits)]
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()
    start = threading.Barrier(16)

    def ask(index: int) -> None:
        start.wait()
        for _ in range(4):
            try:
                replicas[index % 2].admit(client_of("acme", f"studio-{index}"), RequestKind.DETECTION)
                outcome = "admitted"
            except RateLimited:
                outcome = "refused"
            with lock:
                outcomes[outcome] += 1

    threads = [threading.Thread(target=ask, args=(index,)) for index in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert outcomes == {"admitted": 20, "refused": 44}


def test_subject_budget_refuses_without_spending_the_tenants(sessions):
    limits = RateLimits(
        tenant=LimitSet(enrollment_requests_per_minute=3), subject=LimitSet(enrollment_requests_per_minute=1)
    )
    replica = limiter(sessions, limits)
    replica.admit(client_of("acme", "studio-1"), RequestKind.ENROLLMENT)
    for _ in range(5):  # refused by its own budget: the tenant's is not counted for these
        with pytest.raises(RateLimited, match="this token's subject"):
            replica.admit(client_of("acme", "studio-1"), RequestKind.ENROLLMENT)
    replica.admit(client_of("acme", "studio-2"), RequestKind.ENROLLMENT)
    replica.admit(client_of("acme", "studio-3"), RequestKind.ENROLLMENT)
    with pytest.raises(RateLimited, match="this tenant"):
        replica.admit(client_of("acme", "studio-4"), RequestKind.ENROLLMENT)


def test_per_tenant_override_replaces_only_what_it_sets(sessions):
    limits = RateLimits(
        tenant=LimitSet(synthesis_requests_per_minute=1, detection_requests_per_minute=1),
        subject=LimitSet(),
        tenants={"big": LimitSet(synthesis_requests_per_minute=3)},
    )
    replica = limiter(sessions, limits)
    for _ in range(3):
        replica.admit(client_of("big", "studio-1"), RequestKind.SYNTHESIS)
    with pytest.raises(RateLimited):
        replica.admit(client_of("big", "studio-1"), RequestKind.SYNTHESIS)
    replica.admit(client_of("big", "studio-1"), RequestKind.DETECTION)
    with pytest.raises(RateLimited):  # detection keeps the default of every tenant
        replica.admit(client_of("big", "studio-1"), RequestKind.DETECTION)
    replica.admit(client_of("small", "studio-1"), RequestKind.SYNTHESIS)
    with pytest.raises(RateLimited):
        replica.admit(client_of("small", "studio-1"), RequestKind.SYNTHESIS)


def test_audio_quota_refuses_synthesis_until_the_next_utc_day(sessions):
    limits = RateLimits(tenant=LimitSet(synthesis_audio_seconds_per_day=10), subject=LimitSet())
    replica, caller = limiter(sessions, limits), client_of("acme", "studio-1")
    replica.admit(caller, RequestKind.SYNTHESIS)
    replica.spend_audio(caller, seconds=6.0)
    replica.admit(caller, RequestKind.SYNTHESIS)  # 4 s left: admitted
    replica.spend_audio(caller, seconds=6.0)  # released audio counts in full, past the quota
    with pytest.raises(RateLimited, match="synthesis budget of this tenant is spent: 10 s of audio per day") as refused:
        replica.admit(caller, RequestKind.SYNTHESIS)
    assert refused.value.headers == {"Retry-After": str(86_400 - 10)}
    replica.admit(caller, RequestKind.DETECTION)  # the quota is synthesis's only
    limiter(sessions, limits, now=NOW + 86_400).admit(caller, RequestKind.SYNTHESIS)


def test_a_flood_of_refusals_is_one_audit_event_per_budget_and_minute(sessions):
    """200 refused requests from two replicas write no event each, then one event with the count;
    two replicas sweeping at once still write it once."""
    limits = RateLimits(tenant=LimitSet(synthesis_requests_per_minute=1), subject=LimitSet())
    replicas = [limiter(sessions, limits), limiter(sessions, limits)]
    replicas[0].admit(client_of("acme", "studio-1"), RequestKind.SYNTHESIS)
    for index in range(200):
        with pytest.raises(RateLimited):
            replicas[index % 2].admit(client_of("acme", f"studio-{index % 7}"), RequestKind.SYNTHESIS)
    assert report_finished_windows(sessions, now=NOW) == 0  # the minute has not ended
    assert events(sessions, Action.REQUEST_RATE_LIMITED) == []

    written: list[int] = []
    sweepers = [
        threading.Thread(target=lambda: written.append(report_finished_windows(sessions, now=NOW + 60)))
        for _ in range(2)
    ]
    for sweeper in sweepers:
        sweeper.start()
    for sweeper in sweepers:
        sweeper.join(30)
    assert sorted(written) == [0, 1]
    (event,) = events(sessions, Action.REQUEST_RATE_LIMITED)
    assert event.aggregate is not None and event.aggregate.count == 200
    assert event.reason == "tenant_synthesis_requests_per_minute"
    assert event.actor.tenant == "acme" and event.actor.sub == "studio-0"  # the first refused caller
    assert events(sessions, Action.REQUEST_DENIED) == []
    assert report_finished_windows(sessions, now=NOW + 120) == 0


def _fresh_minute() -> None:
    """Sequential HTTP requests use the real clock: start them early in a minute."""
    if time.time() % 60 > 45:
        time.sleep(61 - time.time() % 60)


@pytest.mark.postgres
def test_limits_hold_across_two_gateways_on_one_postgresql(postgres_databases, tmp_path, loaded_models, hs256_token):
    url = postgres_databases.migrated()
    limits = RateLimits(tenant=LimitSet(detection_requests_per_minute=4), subject=LimitSet())
    apps = [
        create_app(
            Settings(mode="dev", data_dir=tmp_path / f"replica-{index}", database_url=url, rate_limits=limits),
            models=loaded_models,
        )
        for index in range(2)
    ]
    token = hs256_token(sub="studio-1", role=["client"], tenant="acme")
    with TestClient(apps[0]) as first, TestClient(apps[1]) as second:
        _fresh_minute()
        answers = [
            client.post("/v1/detect", files={"audio": ("a.wav", NOISE, "audio/wav")}, headers=bearer(token))
            for client in (first, second, first, second, first, second)
        ]
    assert [answer.status_code for answer in answers] == [422, 422, 422, 422, 429, 429]
    refused = answers[-1]
    assert refused.json()["error"] == "rate_limited" and "tenant" in refused.json()["detail"]
    assert set(refused.json()) == {"error", "detail"}
    assert 1 <= int(refused.headers["Retry-After"]) <= 60


def test_enrollment_routes_are_limited_per_owner(tmp_path, loaded_models, hs256_token):
    settings = Settings(
        mode="dev",
        data_dir=tmp_path / "data",
        rate_limits=RateLimits(subject=LimitSet(enrollment_requests_per_minute=2)),
    )
    upgrade(settings.resolved_database_url)
    owner = bearer(hs256_token(sub="owner-1", role=["owner"], name="Olive Owner"))
    body = {
        "grantee_kind": "tenant",
        "grantee_id": "acme",
        "grantee_name": "Acme Audio",
        "purposes": ["narration"],
        "languages": ["en"],
        "not_after": (datetime.now(UTC) + timedelta(days=30)).isoformat(),
        "max_uses": 10,
    }
    with TestClient(create_app(settings, models=loaded_models)) as client:
        _fresh_minute()
        answers = [client.post("/v1/consent/challenges", json=body, headers=owner) for _ in range(3)]
        listed = client.get("/v1/voices", headers=owner)  # not an enrollment request
    assert [answer.status_code for answer in answers[:2]] == [201, 201]
    assert answers[2].status_code == 429 and answers[2].json()["error"] == "rate_limited"
    assert "Retry-After" in answers[2].headers
    assert listed.status_code == 200


def test_rate_limited_synthesis_writes_no_event_and_released_audio_is_spent(gateway, client_token):
    """The refusal comes before admission (no `request.*` event of its own), and the released
    audio's length is what the day's quota counts."""
    client, app, voice = gateway
    parts = gateway_of(app)
    tight = RateLimiter(
        sessions=parts.sessions,
        limits=RateLimits(tenant=LimitSet(synthesis_requests_per_minute=1, synthesis_audio_seconds_per_day=3600)),
        anonymous_detection_per_minute=10,
    )
    service = SynthesisService(
        sessions=parts.sessions, components=parts.components, rate_limiter=tight, replica=parts.replica
    )
    app.dependency_overrides[synthesis_service] = lambda: service
    body = {"voice_id": voice.voice_id, "text": TEXT, "purpose": PURPOSE, "language": "en", "format": "wav"}
    try:
        _fresh_minute()
        released = client.post("/v1/synthesize", json=body, headers=bearer(client_token))
        before = len(audit_events(app))
        refused = client.post("/v1/synthesize", json=body, headers=bearer(client_token))
        after = len(audit_events(app))
    finally:
        app.dependency_overrides.pop(synthesis_service, None)
    assert released.status_code == 200
    assert refused.status_code == 429 and refused.json()["error"] == "rate_limited"
    assert int(refused.headers["Retry-After"]) >= 1
    assert after == before
    seconds = soundfile.info(io.BytesIO(released.content)).duration
    with parts.sessions() as session:
        spent = session.scalars(
            select(Usage.used).where(Usage.bucket.startswith("synthesis_audio_seconds_per_day:tenant:"))
        )
        assert [round(ms / 1000, 1) for ms in spent] == [round(seconds, 1)]
