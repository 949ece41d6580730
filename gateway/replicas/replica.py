"""This gateway process as one replica among several on one database.

Each process registers a `gateway_replicas` row when it first needs one, renews its heartbeat
every ``heartbeat_seconds`` and, on PostgreSQL, holds a session-level advisory lock named after
its row for as long as it lives: when the process dies, its database session ends and the lock
is free, which any other replica can test without waiting for a timeout.

The same background thread closes what dead replicas left (`sweep`): every lease of a replica
whose lock is free is closed as `request.abandoned` reason ``gateway_restarted``, and every lease
of a replica whose heartbeat is older than ``lease_seconds`` (a wedged process, or any dead one
on SQLite, which has no such locks) reason ``lease_expired``. A live replica's leases are never
touched: its lock is held and its heartbeat fresh. Each lease is closed in its own transaction
with its reservation given back, so a replica that wakes up after all finds `LeaseLost` and
releases nothing.

`drain` is the shutdown: refuse new admissions, cancel what is still running (reason
``shutdown``) and close what did not close itself as `request.cancelled`.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, or_, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from audit.events import Action, Actor, AuditEvent, Decision, Digests, Subjects
from engine.interface import CancelToken
from gateway.errors import GatewayError
from gateway.replicas import leases
from gateway.replicas.leases import GATEWAY_RESTARTED, LEASE_EXPIRED, SHUTDOWN
from gateway.replicas.models import Replica, RequestLease
from gateway.shared.clock import utcnow
from gateway.shared.transactions import commit_write_ahead

log = logging.getLogger("clonegate.replicas")

# pg_advisory_lock(classid, objid): the class is "clgr", the object a replica's row id. The
# two-key form never meets the audit integrator's one-key lock.
REPLICA_LOCK_CLASS = 0x636C_6772


class GatewayShuttingDown(GatewayError):
    """This replica is draining: it finishes what it runs and admits nothing new."""

    code = "gateway_shutting_down"
    status = 503
    headers = {"Retry-After": "1"}  # noqa: RUF012 (read-only class default, as GatewayError's)


class ThisReplica:
    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        db_engine: Engine,
        heartbeat_seconds: float = 5.0,
        lease_seconds: float = 30.0,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        if not 0 < heartbeat_seconds < lease_seconds:
            raise ValueError("the heartbeat must come more often than the lease runs out")
        self._sessions = sessions
        self._db_engine = db_engine
        self.heartbeat_seconds = heartbeat_seconds
        self.lease_seconds = lease_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._id: int | None = None
        self._lock_connection: Connection | None = None
        self._running: dict[str, CancelToken] = {}
        self._unrecorded: dict[str, AuditEvent] = {}  # outcomes the database refused, retried
        self._idle = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.draining = False

    @property
    def _on_postgresql(self) -> bool:
        return self._db_engine.dialect.name == "postgresql"

    # --- identity ------------------------------------------------------------------------

    @property
    def id(self) -> int:
        """This replica's row id, registering it on first use."""
        with self._lock:
            if self._id is None:
                self._id = self._register()
            return self._id

    def _register(self) -> int:
        now = self._clock()
        with self._sessions() as session:
            row = Replica(name=f"{socket.gethostname()}:{os.getpid()}", started_at=now, heartbeat_at=now)
            session.add(row)
            session.commit()
            replica_id = row.id
        if self._on_postgresql:
            self._lock_connection = self._take_lock(replica_id)
        log.info("gateway replica %s registered", replica_id)
        return replica_id

    def _take_lock(self, replica_id: int) -> Connection:
        """A connection of its own, never returned to the pool, holding this replica's lock."""
        connection = self._db_engine.connect()
        connection.execute(
            text("SELECT pg_advisory_lock(:class, :object)"), {"class": REPLICA_LOCK_CLASS, "object": replica_id}
        )
        connection.commit()
        return connection

    # --- requests this replica runs --------------------------------------------------------

    def check_accepting(self) -> None:
        if self.draining:
            raise GatewayShuttingDown("this gateway is shutting down; retry on another replica")

    def track(self, request_id: str, cancel: CancelToken) -> None:
        with self._lock:
            self._running[request_id] = cancel

    def untrack(self, request_id: str) -> None:
        with self._lock:
            self._running.pop(request_id, None)
            if not self._running:
                self._idle.notify_all()

    @property
    def running(self) -> int:
        with self._lock:
            return len(self._running)

    def close_own(self, *, request_id: str, event: AuditEvent, sessions: sessionmaker[Session] | None = None) -> bool:
        """Record ``event`` as the outcome of a request this replica runs, giving back its reserved
        use and deleting its lease in the same transaction. False (and nothing recorded) when the
        lease is gone: another replica already closed the request as abandoned. When the database
        fails, the outcome is kept and retried with every heartbeat until it is stored, and the
        error raised."""
        try:
            with (sessions or self._sessions)() as session:
                lease = leases.find_held(session, request_id=request_id, replica_id=self.id)
                if lease is None:
                    session.rollback()
                    log.warning("request %s was already closed by another replica", request_id)
                    return False
                leases.close(session, lease)
                commit_write_ahead(session, event=event)
                return True
        except Exception:
            with self._lock:
                self._unrecorded[request_id] = event
            raise
        finally:
            self.untrack(request_id)

    def _record_unrecorded(self) -> None:
        with self._lock:
            waiting = list(self._unrecorded.items())
        for request_id, event in waiting:
            try:
                self.close_own(request_id=request_id, event=event)
            except Exception:  # still down: kept for the next beat
                continue
            with self._lock:
                self._unrecorded.pop(request_id, None)
            log.info("recorded the outcome of request %s after the database came back", request_id)

    # --- heartbeat and sweeping -------------------------------------------------------------

    def start(self) -> None:
        """Register, close what dead replicas left, then keep doing both in the background."""
        try:
            self.sweep()  # registers this replica first
        except Exception:  # no database or no schema yet (/readyz says which): the beat retries
            log.error("start-up sweep of abandoned requests failed", exc_info=True)
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="replica-heartbeat", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.heartbeat_seconds):
            try:
                self.heartbeat()
                self._record_unrecorded()
                self.sweep()
            except Exception:  # logged; the next beat tries again
                log.error("replica heartbeat or sweep failed", exc_info=True)

    def heartbeat(self) -> None:
        with self._sessions() as session:
            session.execute(update(Replica).where(Replica.id == self.id).values(heartbeat_at=self._clock()))
            session.commit()
        self._keep_lock()

    def _keep_lock(self) -> None:
        """A database restart ends every session and frees their locks: take this replica's
        lock again at once, so others do not take it for dead for longer than that."""
        if not self._on_postgresql or self._stop.is_set():
            return
        with self._lock:
            connection = self._lock_connection
            if connection is not None and not connection.closed and not connection.invalidated:
                try:
                    connection.execute(text("SELECT 1"))
                    connection.commit()
                    return
                except Exception:  # the session is gone: its lock with it
                    log.warning("replica %s lost its database session; taking its lock again", self._id)
                    connection.invalidate()
            self._lock_connection = self._take_lock(self._id) if self._id is not None else None

    def sweep(self) -> int:
        """Close the leases of every dead replica and mark it stopped; returns how many
        requests were closed."""
        me = self.id
        with self._sessions() as session:
            others = session.execute(
                select(Replica.id, Replica.heartbeat_at).where(
                    Replica.id != me,
                    or_(
                        Replica.stopped_at.is_(None),
                        Replica.id.in_(select(RequestLease.replica_id).distinct()),
                    ),
                )
            ).all()
        closed = 0
        expired_before = self._clock() - timedelta(seconds=self.lease_seconds)
        for replica_id, heartbeat_at in others:
            if self._process_ended(replica_id):
                closed += self._close_leases_of(replica_id, reason=GATEWAY_RESTARTED)
            elif heartbeat_at < expired_before:
                closed += self._close_leases_of(replica_id, reason=LEASE_EXPIRED)
        return closed

    def _process_ended(self, replica_id: int) -> bool:
        """On PostgreSQL: its advisory lock is free, so its database session has ended."""
        if not self._on_postgresql or self._lock_connection is None:
            return False
        with self._lock:
            connection = self._lock_connection
            taken = connection.execute(
                text("SELECT pg_try_advisory_lock(:class, :object)"),
                {"class": REPLICA_LOCK_CLASS, "object": replica_id},
            ).scalar_one()
            if taken:
                connection.execute(
                    text("SELECT pg_advisory_unlock(:class, :object)"),
                    {"class": REPLICA_LOCK_CLASS, "object": replica_id},
                )
            connection.commit()
        return bool(taken)

    def _close_leases_of(self, replica_id: int, *, reason: str) -> int:
        closed = 0
        while True:
            with self._sessions() as session:
                lease = session.scalars(
                    select(RequestLease)
                    .where(RequestLease.replica_id == replica_id)
                    .limit(1)
                    .with_for_update(skip_locked=True)
                ).one_or_none()
                if lease is None:
                    session.execute(
                        update(Replica)
                        .where(Replica.id == replica_id, Replica.stopped_at.is_(None))
                        .values(stopped_at=self._clock())
                    )
                    session.commit()
                    break
                request_id = lease.request_id
                event = leases.abandoned_event(lease, reason=reason)
                leases.close(session, lease)
                commit_write_ahead(session, event=event)
            closed += 1
            log.warning("request %s of replica %s closed as abandoned (%s)", request_id, replica_id, reason)
        return closed

    # --- shutdown ------------------------------------------------------------------------------

    def drain(self, *, grace_seconds: float = 5.0) -> int:
        """Admit nothing more; cancel what still runs and wait up to ``grace_seconds`` for it to
        record its own outcome; close the rest as `request.cancelled` reason ``shutdown``.
        Returns how many requests this replica closed itself."""
        self.draining = True
        with self._lock:
            for cancel in self._running.values():
                cancel.cancel(SHUTDOWN)
            deadline = time.monotonic() + grace_seconds
            while self._running and (left := deadline - time.monotonic()) > 0:
                self._idle.wait(left)
        closed = 0
        if self._id is not None:
            with self._sessions() as session:
                left_over = session.scalars(select(RequestLease).where(RequestLease.replica_id == self._id)).all()
            for lease in left_over:
                try:
                    closed += self.close_own(request_id=lease.request_id, event=shutdown_event(lease))
                except Exception:  # the next replica to start closes it as abandoned
                    log.error("could not close request %s at shutdown", lease.request_id, exc_info=True)
        self._record_unrecorded()
        return closed

    def stop(self) -> None:
        """Stop the heartbeat, mark this replica stopped and let go of its lock."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.heartbeat_seconds + 5)
            self._thread = None
        with self._lock:
            # The id stays: a request thread still finishing after this finds its lease closed,
            # it must not register a new replica.
            replica_id = self._id
            connection, self._lock_connection = self._lock_connection, None
        if replica_id is not None:
            try:
                with self._sessions() as session:
                    session.execute(update(Replica).where(Replica.id == replica_id).values(stopped_at=self._clock()))
                    session.commit()
            except Exception:  # the row only informs people; a dead replica is found by its lock
                log.error("could not mark replica %s stopped", replica_id, exc_info=True)
        if connection is not None:
            connection.close()


def shutdown_event(lease: RequestLease) -> AuditEvent:
    """`request.cancelled` reason ``shutdown``: the replica stopped before the request finished."""
    return AuditEvent(
        action=Action.REQUEST_CANCELLED,
        decision=Decision.NONE,
        actor=Actor(iss=lease.actor_iss, sub=lease.actor_sub, role=lease.actor_role, tenant=lease.actor_tenant),
        reason=SHUTDOWN,
        subjects=Subjects(voice_id=lease.voice_id, consent_id=lease.consent_id, request_id=lease.request_id),
        digests=Digests(text_sha256=lease.text_sha256),
    )
