"""Refusals into the audit log: one `request.rate_limited` event per budget and finished minute.

Every replica runs a reporter; each finished window's count is taken by exactly one of them
(store.take_finished deletes what it returns) and its event is appended in the same transaction,
so a count is never lost between the two nor written twice. The reporter also deletes usage
windows that ended.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from sqlalchemy.orm import Session, sessionmaker

from audit.events import Action, Actor, Aggregate, AuditEvent, Decision
from audit.store import append_event
from gateway.rate_limits import store
from gateway.rate_limits.limiter import MINUTE
from gateway.shared.transactions import transaction

log = logging.getLogger("clonegate.rate_limits")


def report_finished_windows(sessions: sessionmaker[Session], *, now: float) -> int:
    """Append one event per budget whose minute of refusals has ended; the number appended."""
    current_minute = int(now // MINUTE) * MINUTE
    with transaction(sessions) as session:
        finished = store.take_finished(session, before=current_minute)
        for window in finished:
            caller = window.caller
            append_event(
                session,
                event=AuditEvent(
                    action=Action.REQUEST_RATE_LIMITED,
                    decision=Decision.DENY,
                    reason=window.limit_name,
                    actor=Actor(iss=caller.iss, sub=caller.sub, role=caller.role, tenant=caller.tenant),
                    aggregate=Aggregate(count=window.count, since=window.first_at, until=window.last_at),
                ),
            )
        store.prune_usage(session, now=int(now))
    return len(finished)


class RefusalReporter:
    """Runs `report_finished_windows` every ``interval`` seconds until ``stop()``."""

    def __init__(
        self, sessions: sessionmaker[Session], *, interval: float, clock: Callable[[], float] = time.time
    ) -> None:
        self._sessions = sessions
        self._interval = interval
        self._clock = clock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rate-limit-reporter", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, *, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                report_finished_windows(self._sessions, now=self._clock())
            except Exception:  # the counts stay in their table; the next round writes them
                log.exception("could not write rate-limit refusals to the audit log")
