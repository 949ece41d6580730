"""Export bundles straight from the store (the gateway's API and CLI call these)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

from sqlalchemy.orm import Session

from audit.bundle import write_bundle
from audit.checkpoint import VerifierKey, open_checkpoint
from audit.merkle import inclusion_proof
from audit.store import EventFilter, iter_leaves, latest_checkpoint, with_prefetch


def export_bundle(
    session: Session, *, directory: Path, verifier: VerifierKey, event_filter: EventFilter | None = None
) -> int:
    """Write a bundle for the latest checkpoint; return the number of events in it.

    Without a filter the bundle is ``full`` (every leaf, the auditor recomputes the tree);
    with one it is ``selected`` (matching events, each with an inclusion proof).
    """
    stored = latest_checkpoint(session)
    checkpoint = open_checkpoint(stored.note, verifier=verifier)
    size = checkpoint.size
    if event_filter is None:
        lines: Iterator[tuple[int, bytes, list[bytes] | None]] = (
            (index, entry, None) for index, entry in iter_leaves(session, size=size)
        )
        mode = "full"
    else:

        def with_proofs() -> Iterator[tuple[int, bytes, list[bytes]]]:
            for index, entry in iter_leaves(session, size=size, event_filter=event_filter):
                proof = with_prefetch(session, partial(inclusion_proof, index=index, size=size))
                yield index, entry, proof

        lines = with_proofs()
        mode = "selected"
    created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return write_bundle(
        directory,
        checkpoint_note=stored.note,
        checkpoint=checkpoint,
        verifier=verifier,
        lines=lines,
        mode=mode,
        created=created,
    )
