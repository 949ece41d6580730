"""Load and fault run: real `clonegate serve --workers N` processes on one PostgreSQL database,
clients in a bounded loop, one worker killed with SIGKILL mid-run (the supervisor starts another),
then the books checked against what the clients saw.

Used by bench/load/run.py (the full run and its report) and by the CI leg in
tests/gateway/test_load_and_kill.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from audit.events import Action, AuditEvent
from audit.models import Leaf, PendingEvent
from gateway.app import create_app
from gateway.auth import Role
from gateway.components import LoadedModels
from gateway.db import create_db_engine, make_session_factory, upgrade
from gateway.dependencies import gateway_of
from gateway.dev_tokens import mint_dev_token
from gateway.replicas.models import Replica, RequestLease
from gateway.settings import Settings
from policy.consent.models import Consent, UsageRecord
from tests.gateway.synthesis_fixtures import PURPOSE, TENANT, grant_voice, seed_cohort

REPO_ROOT = Path(__file__).resolve().parents[2]
TEXTS = (
    "The library opens at nine.",
    "Please bring your own cup.",
    "The train leaves at noon.",
    "We meet again on Friday.",
)
OUTCOMES = {Action.REQUEST_RELEASED, Action.REQUEST_FAILED, Action.REQUEST_CANCELLED, Action.REQUEST_ABANDONED}


@dataclass(frozen=True)
class Seeded:
    voice_id: str
    consent_id: str
    token: str


@dataclass
class Sample:
    client: int
    started: float
    ended: float
    status: int | None  # None: no HTTP answer (connection reset or timed out)
    error: str | None
    audit_id: int | None


@dataclass
class LoadRun:
    replicas: int
    clients: int
    seconds: float
    kill_at: float | None
    killed_pid: int | None = None
    killed_at: float | None = None
    samples: list[Sample] = field(default_factory=list)


def environment(settings: Settings, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "CLONEGATE_MODE": "dev",
        "CLONEGATE_DATA_DIR": str(settings.data_dir),
        "CLONEGATE_DATABASE_URL": settings.resolved_database_url,
        "CLONEGATE_LOG_LEVEL": "WARNING",
        "CLONEGATE_REPLICA_HEARTBEAT_SECONDS": "2",
        "CLONEGATE_REPLICA_LEASE_SECONDS": "10",
        "CLONEGATE_DRAIN_SECONDS": "20",
    }
    env.update(extra)
    return env


def seed(settings: Settings, *, speech_dir: Path, models: LoadedModels | None = None) -> Seeded:
    """Migrate, seed the list's cohort and grant one voice to tenant `acme`, in this process."""
    upgrade(settings.resolved_database_url)
    app = create_app(settings, models=models)
    with TestClient(app):
        if not gateway_of(app).components.executor.wait_ready(300):
            raise RuntimeError("the engine did not warm up")
        seed_cohort(app, speech_dir)
        voice = grant_voice(app, sorted(speech_dir.glob("en_*.wav"))[1], issuer=settings.jwt_issuer, max_uses=1_000_000)
    token = mint_dev_token(settings, subject="studio-1", roles=[Role.CLIENT], tenant=TENANT, ttl_seconds=6 * 3600)
    return Seeded(voice_id=voice.voice_id, consent_id=voice.consent_id, token=token)


def _live_replicas(session: Session) -> list[Replica]:
    return list(session.scalars(select(Replica).where(Replica.stopped_at.is_(None)).order_by(Replica.id)))


@contextmanager
def served(
    settings: Settings, *, workers: int, port: int, log: Path, ready_timeout: float = 600
) -> Iterator[subprocess.Popen[bytes]]:
    """`clonegate serve --workers N` until the block ends, then SIGTERM (drain) and wait."""
    sessions = make_session_factory(create_db_engine(settings.resolved_database_url))
    with sessions() as session:
        known = {replica.id for replica in _live_replicas(session)}
    with log.open("ab") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "serve", "--workers", str(workers), "--port", str(port)],
            cwd=REPO_ROOT,
            env=environment(settings),
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for_replicas(sessions, count=workers, besides=known, timeout=ready_timeout, process=process)
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=120)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def wait_for_replicas(
    sessions: sessionmaker[Session], *, count: int, besides: set[int], timeout: float, process: subprocess.Popen[bytes]
) -> None:
    """Until ``count`` replicas that are not in ``besides`` have registered (each does so once its
    engine is warm, just before it serves)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the gateway exited with {process.returncode}")
        with sessions() as session:
            fresh = [r for r in _live_replicas(session) if r.id not in besides]
        if len(fresh) >= count:
            return
        time.sleep(1)
    raise RuntimeError(f"{count} replicas did not start within {timeout:.0f} s")


def _client_loop(
    index: int, base: str, seeded: Seeded, stop_at: float, samples: list[Sample], lock: threading.Lock
) -> None:
    headers = {"Authorization": f"Bearer {seeded.token}"}
    number = 0
    with httpx.Client(base_url=base, timeout=120) as http:
        while time.monotonic() < stop_at:
            body = {
                "voice_id": seeded.voice_id,
                "text": TEXTS[(index + number) % len(TEXTS)],
                "language": "en",
                "purpose": PURPOSE,
                "format": "wav",
            }
            number += 1
            started = time.monotonic()
            status = audit_id = error = None
            try:
                response = http.post("/v1/synthesize", json=body, headers=headers)
                status = response.status_code
                if status == 200:
                    audit_id = int(response.headers["x-clonegate-audit-id"])
                    if not response.headers["content-type"].startswith("audio/"):
                        error = "200 without audio"
                else:
                    error = response.json().get("error")
                    if status == 429:  # the engine queue is full: back off as the answer says
                        time.sleep(min(2.0, float(response.headers.get("retry-after", "1"))))
            except httpx.HTTPError as exc:
                error = type(exc).__name__
                time.sleep(0.5)
            with lock:
                samples.append(Sample(index, started, time.monotonic(), status, error, audit_id))


def drive(
    settings: Settings,
    seeded: Seeded,
    *,
    replicas: int,
    clients: int,
    seconds: float,
    kill_at: float | None,
    port: int,
    log: Path,
) -> LoadRun:
    """Serve, run the clients for ``seconds``, SIGKILL one worker at ``kill_at`` and wait for its
    replacement, then stop the gateway with SIGTERM."""
    run = LoadRun(replicas=replicas, clients=clients, seconds=seconds, kill_at=kill_at)
    sessions = make_session_factory(create_db_engine(settings.resolved_database_url))
    lock = threading.Lock()
    with sessions() as session:
        before = {replica.id for replica in _live_replicas(session)}
    with served(settings, workers=replicas, port=port, log=log) as process:
        started = time.monotonic()
        threads = [
            threading.Thread(
                target=_client_loop,
                args=(i, f"http://127.0.0.1:{port}", seeded, started + seconds, run.samples, lock),
                daemon=True,
            )
            for i in range(clients)
        ]
        for thread in threads:
            thread.start()
        if kill_at is not None:
            time.sleep(max(0.0, started + kill_at - time.monotonic()))
            with sessions() as session:
                live = {r.id for r in _live_replicas(session)}
                victim = next(r for r in _live_replicas(session) if r.id not in before)
            run.killed_pid = int(victim.name.rsplit(":", 1)[1])
            os.kill(run.killed_pid, signal.SIGKILL)
            run.killed_at = time.monotonic() - started
            wait_for_replicas(sessions, count=1, besides=live, timeout=600, process=process)
        for thread in threads:
            thread.join()
        for sample in run.samples:
            sample.started -= started
            sample.ended -= started
        # The killed worker's requests are closed by the others (or its successor) within a
        # heartbeat; wait for that before stopping the rest.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and _leases(sessions):
            time.sleep(1)
    return run


def _leases(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(RequestLease)) or 0


def logged_events(sessions: sessionmaker[Session]) -> list[tuple[int, AuditEvent]]:
    with sessions() as session:
        rows = [
            *session.execute(select(Leaf.pending_id, Leaf.entry)),
            *session.execute(select(PendingEvent.id, PendingEvent.entry)),
        ]
    return sorted((audit_id, AuditEvent.from_canonical_bytes(bytes(entry))) for audit_id, entry in rows)


def check(settings: Settings, seeded: Seeded, run: LoadRun) -> dict[str, Any]:
    """The books after the run: what must hold, each as a count that must be zero, and the figures."""
    sessions = make_session_factory(create_db_engine(settings.resolved_database_url))
    events = logged_events(sessions)
    admitted = {
        audit_id: event.subjects.request_id for audit_id, event in events if event.action is Action.REQUEST_ADMITTED
    }
    outcomes: dict[str, list[AuditEvent]] = {}
    for _, event in events:
        if event.action in OUTCOMES and event.subjects.request_id:
            outcomes.setdefault(event.subjects.request_id, []).append(event)
    released = {rid for rid, found in outcomes.items() if any(e.action is Action.REQUEST_RELEASED for e in found)}
    with sessions() as session:
        consent = session.get(Consent, seeded.consent_id)
        uses = consent.uses if consent is not None else 0
        ledger = session.scalar(select(func.count()).where(UsageRecord.consent_id == seeded.consent_id)) or 0
        leases_left = session.scalar(select(func.count()).select_from(RequestLease)) or 0
    audit_check = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "audit", "check"],
        cwd=REPO_ROOT,
        env=environment(settings),
        capture_output=True,
        text=True,
    )
    killed_at = run.killed_at
    # The killed worker's clients: requests in flight when it died.
    in_flight_at_kill = [s for s in run.samples if killed_at is not None and s.started <= killed_at <= s.ended]
    server_errors = [s for s in run.samples if s.status is None or s.status >= 500]
    unexplained_errors = [s for s in server_errors if s not in in_flight_at_kill]
    ok = [s for s in run.samples if s.status == 200]
    latencies = sorted(s.ended - s.started for s in ok)
    abandoned = Counter(e.reason for found in outcomes.values() for e in found if e.action is Action.REQUEST_ABANDONED)
    released_requests = len([rid for rid in admitted.values() if rid in released])
    problems = {
        "admitted_without_exactly_one_outcome": len(
            [rid for rid in admitted.values() if rid is None or len(outcomes.get(rid, [])) != 1]
        ),
        "ok_without_released_event": len(
            [s for s in ok if s.audit_id is None or admitted.get(s.audit_id) not in released]
        ),
        "grant_uses_minus_released_requests": uses - released_requests,
        "usage_ledger_minus_released_requests": ledger - released_requests,
        "leases_left": leases_left,
        "server_errors_not_from_the_killed_worker": len(unexplained_errors),
        "audit_check_failed": int(audit_check.returncode != 0),
    }
    return {
        "problems": problems,
        "audit_check": (audit_check.stdout + audit_check.stderr).strip(),
        "requests": len(run.samples),
        "statuses": dict(Counter(str(s.status) if s.status else f"no answer ({s.error})" for s in run.samples)),
        "errors": dict(Counter(s.error for s in run.samples if s.error)),
        "admitted": len(admitted),
        "released": len(released),
        "outcomes": dict(Counter(found[0].action.value for found in outcomes.values() if found)),
        "abandoned_reasons": dict(abandoned),
        "grant_uses": uses,
        "in_flight_at_kill": len(in_flight_at_kill),
        "server_errors": len(server_errors),
        "throughput_per_s": round(len(ok) / run.seconds, 3),
        "latency_s": _percentiles(latencies),
        "killed_pid": run.killed_pid,
        "killed_at_s": round(killed_at, 1) if killed_at is not None else None,
    }


def _percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p90": None, "p99": None, "max": None}

    def at(q: float) -> float:
        return round(values[min(len(values) - 1, int(q * len(values)))], 3)

    return {"p50": at(0.5), "p90": at(0.9), "p99": at(0.99), "max": round(values[-1], 3)}


def samples_json(run: LoadRun) -> list[dict[str, Any]]:
    return [asdict(sample) for sample in run.samples]


def dump(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
