"""The background thread the gateway starts: one integration round per interval.

Every process may run one; on PostgreSQL the advisory lock elects the leader for each round,
the others find the lock taken and do nothing. On SQLite run it in one process only.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable

from sqlalchemy.orm import Session

from audit.checkpoint import SigningKey
from audit.store import DEFAULT_BATCH, IntegrationResult, integrate

log = logging.getLogger(__name__)


def integrate_pending(
    session_factory: Callable[[], Session], *, key: SigningKey, origin: str, batch_size: int = DEFAULT_BATCH
) -> IntegrationResult:
    """Integration rounds (each its own transaction) until nothing is pending; the last result."""
    while True:
        with session_factory() as session:
            result = integrate(session, key=key, origin=origin, batch_size=batch_size)
            session.commit()
        if not result.leader or result.integrated < batch_size:
            return result


class IntegratorThread:
    """Runs ``integrate_pending`` every ``interval`` seconds until ``stop()``."""

    def __init__(
        self,
        session_factory: Callable[[], Session],
        *,
        key: SigningKey,
        origin: str,
        interval: float = 1.0,
        batch_size: int = DEFAULT_BATCH,
    ) -> None:
        if interval <= 0:
            raise ValueError("checkpoint interval must be positive")
        self._session_factory = session_factory
        self._key = key
        self._origin = origin
        self._interval = interval
        self._batch_size = batch_size
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="audit-integrator", daemon=True)
        self.rounds = 0
        self.failures = 0
        self._last_round_ok = True
        # Wall seconds of recent rounds, for the benchmark and for operators' metrics.
        self.round_seconds: deque[float] = deque(maxlen=10_000)

    @property
    def healthy(self) -> bool:
        """Running, and its last round succeeded (what the readiness probe reports)."""
        return self._thread.is_alive() and self._last_round_ok

    def start(self) -> None:
        self._thread.start()

    def stop(self, *, timeout: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout)
        # A last round so that events appended just before shutdown get a checkpoint.
        try:
            integrate_pending(self._session_factory, key=self._key, origin=self._origin, batch_size=self._batch_size)
        except Exception:  # shutdown must not hang on a broken store; the next start integrates them
            log.exception("final audit integration round failed")

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                integrate_pending(
                    self._session_factory, key=self._key, origin=self._origin, batch_size=self._batch_size
                )
                self.rounds += 1
                self._last_round_ok = True
                self.round_seconds.append(time.monotonic() - started)
            except Exception:  # keep the thread alive: pending events wait, readiness reports it
                self.failures += 1
                self._last_round_ok = False
                log.exception("audit integration round failed")
            self._stop.wait(max(0.0, self._interval - (time.monotonic() - started)))
