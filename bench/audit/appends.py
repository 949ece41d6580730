"""Append throughput, append latency and append-to-checkpoint latency with concurrent writers.

Each writer thread loops and records the latency of one append that is a transaction of its own:
in mode ``appender`` through the process's ``AuditAppender`` (group commit, as the gateway records
a standalone event), in mode ``transaction`` with a session, ``append_event`` and a commit. The real ``IntegratorThread`` runs alongside at the
configured interval. A poller reads the latest signed checkpoint every 20 ms and notes when
each tree size first became visible; afterwards each event's leaf index gives the first
checkpoint that covers it, so "inclusion latency" is commit -> visible signed checkpoint.
"""

from __future__ import annotations

import statistics
import threading
import time
import uuid

from sqlalchemy import create_engine, select, text

from audit.appender import AuditAppender
from audit.checkpoint import SigningKey
from audit.events import Action, Actor, AuditEvent, Decision, Digests, EngineInfo, Subjects
from audit.integrator import IntegratorThread
from audit.models import Leaf, StoredCheckpoint
from audit.store import append_event
from gateway.db import create_db_engine, make_session_factory, upgrade


def realistic_event(writer: int, i: int) -> AuditEvent:
    return AuditEvent(
        action=Action.REQUEST_ADMITTED,
        decision=Decision.ALLOW,
        actor=Actor(iss="https://issuer.example", sub=f"client-{writer}", role="client", tenant=f"tenant-{writer % 4}"),
        subjects=Subjects(voice_id=f"voice-{i % 50}", consent_id=f"consent-{i % 50}", request_id=str(uuid.uuid4())),
        digests=Digests(text_sha256="ab" * 32, reference_sha256=("cd" * 32,)),
        engine=EngineInfo(name="piper-world", version="1.3.0"),
    )


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


class PostgresDatabase:
    def __init__(self, admin_url: str) -> None:
        self.admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        self.name = f"clonegate_bench_{uuid.uuid4().hex[:10]}"
        with self.admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{self.name}"'))
        self.url = f"{admin_url.rsplit('/', 1)[0]}/{self.name}"

    def drop(self) -> None:
        with self.admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
        self.admin.dispose()


def _writer_process(url: str, numbers: list[int], mode: str, ready, go, stop, results) -> None:
    """One process running several writer threads (processes sidestep the GIL, like gateway workers)."""
    engine = (
        create_engine(url, pool_size=len(numbers) + 1, max_overflow=2)
        if url.startswith("postgresql")
        else create_db_engine(url)
    )
    sessions = make_session_factory(engine)
    appender = AuditAppender(engine)
    records: dict[int, list[tuple[int, float, float]]] = {number: [] for number in numbers}
    errors: list[str] = []

    def writer(number: int) -> None:
        mine = records[number]
        i = 0
        go.wait()
        try:
            while not stop.is_set():
                event = realistic_event(number, i)
                started = time.monotonic()
                if mode == "appender":
                    pending_id = appender.append(event)
                else:
                    with sessions() as session:
                        pending_id = append_event(session, event=event)
                        session.commit()
                mine.append((pending_id, started, time.monotonic()))
                i += 1
        except Exception as exc:  # reported in the results, never silently dropped
            errors.append(repr(exc))

    # Open every connection before the clock starts.
    warm = [engine.connect() for _ in numbers]
    for connection in warm:
        connection.close()
    threads = [threading.Thread(target=writer, args=(number,)) for number in numbers]
    for thread in threads:
        thread.start()
    ready.put(len(numbers))
    for thread in threads:
        thread.join()
    engine.dispose()
    results.put(([item for number in numbers for item in records[number]], errors))


def run_appends(
    url: str, *, writers: int, processes: int, duration: float, interval: float, mode: str = "appender"
) -> dict:
    import bisect
    import multiprocessing

    upgrade(url)
    context = multiprocessing.get_context("spawn")
    go, stop, results, ready = context.Event(), context.Event(), context.Queue(), context.Queue()
    groups = [list(range(writers))[p::processes] for p in range(processes)]
    children = [
        context.Process(target=_writer_process, args=(url, group, mode, ready, go, stop, results)) for group in groups
    ]
    for child in children:
        child.start()
    engine = create_db_engine(url)
    sessions = make_session_factory(engine)
    key = SigningKey.generate(name="bench.clonegate.invalid/audit")
    integrator = IntegratorThread(sessions, key=key, origin=key.name, interval=interval)
    first_seen: dict[int, float] = {}
    poll_stop = threading.Event()

    def poller() -> None:
        last = 0
        while not poll_stop.is_set():
            with sessions() as session:
                size = (
                    session.scalar(
                        select(StoredCheckpoint.tree_size).order_by(StoredCheckpoint.tree_size.desc()).limit(1)
                    )
                    or 0
                )
            if size > last:
                first_seen[size] = time.monotonic()
                last = size
            time.sleep(0.02)

    for _ in children:  # every writer process imported, connected and waiting
        ready.get(timeout=300)
    integrator.start()
    poll = threading.Thread(target=poller)
    poll.start()
    t0 = time.monotonic()
    go.set()
    time.sleep(duration)
    stop.set()
    appended, errors = [], []
    for _ in children:
        records, child_errors = results.get(timeout=120)
        appended.extend(records)
        errors.extend(child_errors)
    for child in children:
        child.join()
    if not appended:
        raise RuntimeError(f"no appends recorded; writer errors: {errors[:3]}")
    elapsed = max(done for _, _, done in appended) - t0
    # Wait until a checkpoint covers everything (bounded), then stop the poller and integrator.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (max(first_seen, default=0) < len(appended)):
        time.sleep(0.05)
    poll_stop.set()
    poll.join()
    integrator.stop()

    latencies_ms = [(done - started) * 1000 for _, started, done in appended]
    with sessions() as session:
        index_of = dict(session.execute(select(Leaf.pending_id, Leaf.leaf_index)).all())
    sizes = sorted(first_seen)
    inclusion_s, missing = [], 0
    for pending_id, _, done in appended:
        index = index_of.get(pending_id)
        position = bisect.bisect_right(sizes, index) if index is not None else len(sizes)
        if position == len(sizes):
            missing += 1
            continue
        inclusion_s.append(first_seen[sizes[position]] - done)
    # Throughput per whole second, skipping the first (warm-up) and the partial last one.
    buckets: dict[int, int] = {}
    for _, _, done in appended:
        buckets[int(done - t0)] = buckets.get(int(done - t0), 0) + 1
    steady = [buckets.get(second, 0) for second in range(1, int(duration))]
    engine.dispose()
    return {
        "mode": mode,
        "writers": writers,
        "writer_processes": processes,
        "duration_s": round(elapsed, 2),
        "appends": len(appended),
        "appends_per_s": round(len(appended) / elapsed, 1),
        "appends_per_s_worst_second": min(steady) if steady else None,
        "append_latency_ms_p50": round(statistics.median(latencies_ms), 2),
        "append_latency_ms_p99": round(percentile(latencies_ms, 99), 2),
        "inclusion_latency_s_p50": round(statistics.median(inclusion_s), 3) if inclusion_s else None,
        "inclusion_latency_s_p99": round(percentile(inclusion_s, 99), 3) if inclusion_s else None,
        "events_not_seen_in_a_checkpoint": missing,
        "checkpoint_interval_s": interval,
        "integrator_rounds": integrator.rounds,
        "integrator_round_s_p50": round(statistics.median(integrator.round_seconds), 3)
        if integrator.round_seconds
        else None,
        "integrator_round_s_max": round(max(integrator.round_seconds), 3) if integrator.round_seconds else None,
        "integrator_failures": integrator.failures,
        "writer_errors": errors[:5],
    }
