"""Group-committed standalone appends: every writer gets its own event's id, durable when returned."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select

from audit.appender import AuditAppender
from audit.checkpoint import SigningKey
from audit.errors import AuditUnavailable
from audit.events import AuditEvent
from audit.integrator import integrate_pending
from audit.models import PendingEvent
from audit.store import find_event
from gateway.db import create_db_engine, make_session_factory
from tests.audit.storage_helpers import ORIGIN, event


def test_sixteen_writers_each_get_the_id_of_their_own_event(db_engine):
    appender = AuditAppender(db_engine, max_batch=7)
    got: dict[str, int] = {}
    lock = threading.Lock()
    start = threading.Barrier(16)

    def writer(number: int) -> None:
        start.wait()
        for i in range(25):
            written = event(number * 100 + i)
            pending_id = appender.append(written)
            with lock:
                got[written.event_id] = pending_id

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(got) == 400 and len(set(got.values())) == 400
    sessions = make_session_factory(db_engine)
    with sessions() as session:
        # Committed when append returned, and each id names the event its writer appended.
        assert session.scalar(select(PendingEvent.id).where(PendingEvent.id.in_(list(got.values()))).limit(1))
        for event_id, pending_id in list(got.items())[::37]:
            assert (
                AuditEvent.from_canonical_bytes(find_event(session, pending_id=pending_id).entry).event_id == event_id
            )
    result = integrate_pending(sessions, key=SigningKey.generate(name=ORIGIN), origin=ORIGIN)
    assert result.tree_size == 400


def test_a_store_that_refuses_fails_every_waiting_writer(tmp_path):
    engine = create_db_engine(f"sqlite:///{tmp_path / 'no-schema.db'}")  # no audit_pending table
    appender = AuditAppender(engine)
    with pytest.raises(AuditUnavailable, match="refused 1 event"):
        appender.append(event(1))
    engine.dispose()
