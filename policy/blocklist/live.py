"""The index every gateway process keeps in memory, reloaded when the list changes anywhere.

Each process polls ``blocklist_state.version`` (one indexed single-row read) at most every
``poll_seconds`` and rebuilds its snapshot when the number moved, so a change committed by any
process is in force everywhere within ``poll_seconds`` plus one reload. Loading fails closed:
no cohort, or entries embedded with another model, raise instead of yielding an empty list.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from policy.blocklist.index import BlocklistIndex
from policy.blocklist.matching import DEFAULT_COHORT_TOP_K, BlocklistThresholds, Cohort, Normalization
from policy.blocklist.models import BlocklistException, ProtectedSpeaker, ReviewItem, ReviewStatus
from policy.blocklist.repository import current_version, decode_vector, load_cohort_embeddings
from policy.blocklist.screening import BlocklistSnapshot
from policy.errors import BlocklistMisconfigured

# Issue 7: other processes must see a change within 5 s; polling every 2 s leaves room for
# the reload itself (about 2 s for 100,000 entries).
DEFAULT_POLL_SECONDS = 2.0
MAX_STALENESS_SECONDS = 5.0


def load_snapshot(
    session: Session,
    *,
    embedder_name: str,
    dimension: int,
    thresholds: BlocklistThresholds,
    cohort_top_k: int = DEFAULT_COHORT_TOP_K,
    normalization: Normalization = "as-norm",
    cohort_centering: bool = True,
) -> BlocklistSnapshot:
    """Read the active list, its cohort, exceptions and clearances as one snapshot."""
    # Version first: a change committed while we read makes the next poll reload again.
    version = current_version(session)
    cohort = Cohort(
        load_cohort_embeddings(session, embedder_name=embedder_name, dimension=dimension),
        top_k=cohort_top_k,
        center=cohort_centering,
    )
    rows = session.execute(
        select(ProtectedSpeaker.id, ProtectedSpeaker.embedder_name, ProtectedSpeaker.model)
        .where(ProtectedSpeaker.active.is_(True))
        .order_by(ProtectedSpeaker.id)
    ).all()
    foreign = [row.id for row in rows if row.embedder_name != embedder_name]
    if foreign:
        raise BlocklistMisconfigured(
            f"{len(foreign)} active entries were embedded with another speaker model "
            f"(first: {foreign[0]}); move them with `clonegate blocklist reembed` (the original recordings) "
            f"or deactivate them"
        )
    models = (
        np.stack([decode_vector(row.model, dimension=dimension) for row in rows])
        if rows
        else np.zeros((0, dimension), dtype=np.float32)
    )
    index = BlocklistIndex(
        entry_ids=np.array([row.id for row in rows], dtype=np.int64),
        models=models,
        cohort=cohort,
        thresholds=thresholds,
        embedder_name=embedder_name,
        version=version,
        normalization=normalization,
    )
    exceptions: dict[str, set[int]] = defaultdict(set)
    for entry_id, voice_id in session.execute(
        select(BlocklistException.entry_id, BlocklistException.voice_id).where(BlocklistException.revoked_at.is_(None))
    ):
        exceptions[voice_id].add(int(entry_id))
    clearances: dict[str, set[int]] = defaultdict(set)
    for entry_id, voice_id in session.execute(
        select(ReviewItem.entry_id, ReviewItem.voice_id).where(ReviewItem.status == ReviewStatus.APPROVED)
    ):
        clearances[voice_id].add(int(entry_id))
    return BlocklistSnapshot(
        index=index,
        exceptions={voice: frozenset(ids) for voice, ids in exceptions.items()},
        clearances={voice: frozenset(ids) for voice, ids in clearances.items()},
    )


class LiveBlocklist:
    """A process's current snapshot; ``snapshot()`` is cheap and at most ``poll_seconds`` stale."""

    def __init__(
        self,
        *,
        session_factory: Callable[[], Session],
        embedder_name: str,
        dimension: int,
        thresholds: BlocklistThresholds,
        cohort_top_k: int = DEFAULT_COHORT_TOP_K,
        normalization: Normalization = "as-norm",
        cohort_centering: bool = True,
        poll_seconds: float = DEFAULT_POLL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if thresholds is None:
            raise BlocklistMisconfigured("blocklist thresholds are not configured")
        if not 0 < poll_seconds <= 5:
            raise BlocklistMisconfigured("poll_seconds must be in (0, 5]: changes must spread within 5 s")
        self._session_factory = session_factory
        self._embedder_name, self._dimension, self._thresholds = embedder_name, dimension, thresholds
        self._cohort_top_k, self._normalization, self._cohort_centering = cohort_top_k, normalization, cohort_centering
        self._poll_seconds = poll_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._snapshot: BlocklistSnapshot | None = None
        self._polled_at = float("-inf")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def thresholds(self) -> BlocklistThresholds:
        return self._thresholds

    @property
    def normalization(self) -> Normalization:
        return self._normalization

    def refresh(self, *, force: bool = False) -> BlocklistSnapshot:
        """Poll the version now and reload if it moved (or if ``force``)."""
        with self._lock:
            with self._session_factory() as session:
                version = current_version(session)
                if force or self._snapshot is None or version != self._snapshot.version:
                    self._snapshot = load_snapshot(
                        session,
                        embedder_name=self._embedder_name,
                        dimension=self._dimension,
                        thresholds=self._thresholds,
                        cohort_top_k=self._cohort_top_k,
                        normalization=self._normalization,
                        cohort_centering=self._cohort_centering,
                    )
                session.rollback()  # read-only: end the transaction, never commit from here
            self._polled_at = self._clock()
            return self._snapshot

    def snapshot(self) -> BlocklistSnapshot:
        current = self._snapshot
        age = self._clock() - self._polled_at
        if current is not None and age < self._poll_seconds:
            return current
        # While another thread reloads, requests keep using the current snapshot, but never one
        # whose last successful poll is older than the 5 s freshness promise.
        if current is not None and age < MAX_STALENESS_SECONDS and self._lock.locked():
            return current
        return self.refresh()

    def start_background_refresh(self) -> None:
        """Poll from a daemon thread so requests rarely pay for a reload themselves."""
        if self._thread is not None:
            return

        def loop() -> None:
            while not self._stop.wait(self._poll_seconds / 2):
                try:
                    self.refresh()
                except Exception:
                    continue

        self._thread = threading.Thread(target=loop, name="blocklist-refresh", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
