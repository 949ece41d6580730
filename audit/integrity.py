"""The start-up integrity check of the stored log (``clonegate audit check``).

Recomputes the tree from the stored entries and checks it against everything stored and
signed: contiguous indices from 0, each leaf hash, each checkpoint's signature and root at its
size, the stored perfect-subtree nodes that proofs are served from, and the pending queue.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from audit.checkpoint import VerifierKey, open_checkpoint
from audit.errors import CheckpointError, LogIntegrityError, ProofUnavailable
from audit.merkle import CompactRange, subtree_root
from audit.models import Leaf, Node, PendingEvent, StoredCheckpoint
from audit.store import StoredNodes


@dataclass(frozen=True)
class IntegrityReport:
    tree_size: int
    checkpoints: int
    nodes_checked: int
    pending: int


def check_log_integrity(
    session: Session, *, verifier: VerifierKey, origin: str, chunk: int = 20_000
) -> IntegrityReport:
    """Raise ``LogIntegrityError`` (or a ``CheckpointError``) naming the first inconsistency found."""
    checkpoints = session.execute(
        select(StoredCheckpoint.tree_size, StoredCheckpoint.root_hash, StoredCheckpoint.note).order_by(
            StoredCheckpoint.tree_size
        )
    ).all()
    signed: dict[int, bytes] = {}
    for size, root, note in checkpoints:
        try:
            checkpoint = open_checkpoint(note, verifier=verifier, origin=origin)
        except CheckpointError as exc:
            raise type(exc)(f"stored checkpoint of size {size}: {exc}") from exc
        if checkpoint.size != size or checkpoint.root_hash != bytes(root):
            raise LogIntegrityError(f"checkpoint row {size} does not match its own signed note")
        signed[size] = checkpoint.root_hash

    compact = CompactRange()
    sha256 = hashlib.sha256
    nodes_checked = 0
    created: dict[tuple[int, int], bytes] = {}
    after = -1
    while True:
        rows = session.execute(
            select(Leaf.leaf_index, Leaf.entry, Leaf.leaf_hash)
            .where(Leaf.leaf_index > after)
            .order_by(Leaf.leaf_index)
            .limit(chunk)
        ).all()
        if not rows:
            break
        for index, entry, digest in rows:
            if index != compact.size:
                raise LogIntegrityError(
                    f"leaf index {compact.size} is missing (next stored index is {index}): an event was deleted"
                )
            computed = sha256(b"\x00" + bytes(entry)).digest()
            if computed != bytes(digest):
                raise LogIntegrityError(f"leaf {index}: stored entry does not hash to its leaf hash (edited event)")
            for level, node_index, node in compact.append(computed):
                if level:
                    created[(level, node_index)] = node
            if compact.size in signed and compact.root() != signed[compact.size]:
                raise LogIntegrityError(
                    f"leaves 0..{index} do not hash to the signed checkpoint of size {compact.size}:"
                    " an event was edited, reordered or replaced"
                )
        after = rows[-1][0]
        nodes_checked += _compare_nodes(session, created)
        created.clear()
    size = compact.size
    latest = max(signed) if signed else 0
    if latest > size:
        raise LogIntegrityError(f"log truncated: checkpoint {latest} was signed but only {size} leaves are stored")
    # Proofs are served from stored nodes: the latest checkpoint's root must come out of them too.
    if latest:
        nodes = StoredNodes(session)
        wanted: set[tuple[int, int]] = set()

        def record(level: int, index: int) -> bytes:
            wanted.add((level, index))
            return b"\x00" * 32

        subtree_root(record, 0, latest)
        nodes.prefetch(wanted)
        try:
            from_nodes = subtree_root(nodes.node, 0, latest)
        except ProofUnavailable as exc:
            raise LogIntegrityError(f"stored proof nodes are incomplete: {exc}") from exc
        if from_nodes != signed[latest]:
            raise LogIntegrityError("stored proof nodes do not reproduce the latest signed root")
    pending = int(session.scalar(select(func.count()).select_from(PendingEvent)))
    return IntegrityReport(tree_size=size, checkpoints=len(signed), nodes_checked=nodes_checked, pending=pending)


def _compare_nodes(session: Session, created: dict[tuple[int, int], bytes]) -> int:
    """Check the perfect-subtree nodes recomputed for one chunk against the stored ones."""
    by_level: dict[int, list[int]] = {}
    for level, index in created:
        by_level.setdefault(level, []).append(index)
    for level, indices in by_level.items():
        stored = {
            int(index): bytes(digest)
            for index, digest in session.execute(
                select(Node.node_index, Node.hash).where(
                    Node.level == level, Node.node_index >= min(indices), Node.node_index <= max(indices)
                )
            )
        }
        for index in indices:
            if stored.get(index) != created[(level, index)]:
                raise LogIntegrityError(
                    f"stored proof node at level {level}, index {index} is missing or wrong: proofs would not verify"
                )
    return len(created)
