"""Group commit for events that are a transaction of their own (a refusal recorded after the
refused request's own transaction rolled back).

Each such append used to cost a session, BEGIN, INSERT, COMMIT and a flush of the write-ahead log
of its own. The appender queues events from every thread of the process; one flusher writes all
that are waiting with a single statement in autocommit mode (one round trip and one WAL flush for
the batch) and hands each writer its pending id once the batch is durable. A writer alone waits
for one round trip; many writers share theirs.

On SQLite (one writer at a time anyway) each event is inserted and committed on its own.
"""

from __future__ import annotations

import threading
import weakref
from collections import defaultdict, deque
from concurrent.futures import Future
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine

from audit.errors import AuditUnavailable
from audit.events import AuditEvent
from audit.store import _INSERT_PENDING

DEFAULT_MAX_BATCH = 500

# RETURNING lists rows in no promised order, so each id is matched to its entry (every entry is
# unique: it holds the event's own UUID).
_INSERT_BATCH = (
    "INSERT INTO audit_pending (entry, created_at) SELECT * FROM unnest(%s::bytea[], %s::timestamptz[])"
    " RETURNING id, entry"
)


# A flusher with nothing to write for this long exits; the next append starts another.
IDLE_SECONDS = 5.0


class AuditAppender:
    """``append(event)`` returns the event's pending id once it is committed, or raises
    ``AuditUnavailable``; thread-safe. It holds its engine weakly, so it can be cached per engine
    (`appender_for`) without keeping a disposed one alive."""

    def __init__(self, engine: Engine, *, max_batch: int = DEFAULT_MAX_BATCH) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._engine = weakref.ref(engine)
        self._batched = engine.dialect.name == "postgresql"
        self._max_batch = max_batch
        self._queue: deque[tuple[bytes, Future[int]]] = deque()
        self._ready = threading.Condition()
        self._flushing = False

    def append(self, event: AuditEvent) -> int:
        entry = event.canonical_bytes()
        waiting: Future[int] = Future()
        with self._ready:
            self._queue.append((entry, waiting))
            if not self._flushing:
                self._flushing = True
                threading.Thread(target=self._run, name="audit-appender", daemon=True).start()
            self._ready.notify()
        return waiting.result()

    def _run(self) -> None:
        # While one batch is being written the next one gathers: that is the group commit.
        while True:
            with self._ready:
                if not self._queue:
                    self._ready.wait(IDLE_SECONDS)
                if not self._queue:
                    self._flushing = False
                    return
                batch = [self._queue.popleft() for _ in range(min(self._max_batch, len(self._queue)))]
            self._write(batch)

    def _write(self, batch: list[tuple[bytes, Future[int]]]) -> None:
        now = datetime.now(UTC)
        try:
            engine = self._engine()
            if engine is None:
                raise AuditUnavailable("the audit store's engine was disposed")
            with engine.connect() as connection:
                autocommit = connection.execution_options(isolation_level="AUTOCOMMIT")
                ids = self._insert(autocommit, [entry for entry, _ in batch], now)
        except Exception as exc:  # every waiter must hear of it: none may go on unrecorded
            failure = AuditUnavailable(f"the audit store refused {len(batch)} event(s): {exc.__class__.__name__}")
            failure.__cause__ = exc
            for _, waiting in batch:
                waiting.set_exception(failure)
            return
        for entry, waiting in batch:
            waiting.set_result(ids[entry].pop())

    def _insert(self, connection: Connection, entries: list[bytes], now: datetime) -> dict[bytes, list[int]]:
        ids: dict[bytes, list[int]] = defaultdict(list)
        if self._batched:
            rows: Any = connection.exec_driver_sql(_INSERT_BATCH, (entries, [now] * len(entries)))
            for pending_id, entry in rows:
                ids[bytes(entry)].append(int(pending_id))
        else:
            for entry in entries:
                ids[entry].append(
                    int(connection.execute(_INSERT_PENDING, {"entry": entry, "created_at": now}).scalar_one())
                )
        return ids


_appenders: weakref.WeakKeyDictionary[Engine, AuditAppender] = weakref.WeakKeyDictionary()
_appenders_lock = threading.Lock()


def appender_for(engine: Engine) -> AuditAppender:
    """The process's appender for ``engine``: writers of one process share its batches."""
    with _appenders_lock:
        appender = _appenders.get(engine)
        if appender is None:
            appender = _appenders[engine] = AuditAppender(engine)
        return appender
