"""16 concurrent writers on PostgreSQL with two integrators racing, then a full verification."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from sqlalchemy import select

from audit.bundle import verify_bundle
from audit.checkpoint import SigningKey
from audit.export import export_bundle
from audit.integrator import IntegratorThread
from audit.integrity import check_log_integrity
from audit.models import Leaf
from audit.store import append_event
from gateway.db import create_db_engine, make_session_factory
from tests.audit.storage_helpers import ORIGIN, event

WRITERS = 16
EVENTS_PER_WRITER = 50
KEY = SigningKey.generate(name=ORIGIN)


@pytest.mark.postgres
def test_sixteen_writers_no_gaps_no_duplicates_every_event_once(postgres_databases, tmp_path):
    engine = create_db_engine(postgres_databases.migrated())
    sessions = make_session_factory(engine)
    # Two integrators, as two gateway processes would run: the advisory lock elects one per round.
    integrators = [IntegratorThread(sessions, key=KEY, origin=ORIGIN, interval=0.05) for _ in range(2)]
    for integrator in integrators:
        integrator.start()
    errors: list[BaseException] = []
    barrier = threading.Barrier(WRITERS)

    def writer(number: int) -> None:
        try:
            barrier.wait()
            for i in range(EVENTS_PER_WRITER):
                with sessions() as session:
                    append_event(session, event=event(number * 1000 + i))
                    session.commit()
        except BaseException as exc:  # surfaced below; a thread cannot fail the test itself
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for integrator in integrators:
        integrator.stop()
    assert errors == []
    assert sum(integrator.failures for integrator in integrators) == 0

    total = WRITERS * EVENTS_PER_WRITER
    with sessions() as session:
        report = check_log_integrity(session, verifier=KEY.verifier, origin=ORIGIN)
        assert (report.tree_size, report.pending) == (total, 0)
        indices = session.scalars(select(Leaf.leaf_index).order_by(Leaf.leaf_index)).all()
        assert indices == list(range(total))
        event_ids = Counter(session.scalars(select(Leaf.event_id)).all())
        expected = {f"event-{n * 1000 + i}" for n in range(WRITERS) for i in range(EVENTS_PER_WRITER)}
        assert set(event_ids) == expected and max(event_ids.values()) == 1
        assert export_bundle(session, directory=tmp_path / "bundle", verifier=KEY.verifier) == total
    bundle_report = verify_bundle(tmp_path / "bundle", trusted_key=KEY.verifier, strict=True)
    assert bundle_report.event_count == total
    engine.dispose()
