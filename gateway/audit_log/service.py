"""Reading, proving and exporting the audit log (auditor or admin).

Admins see every tenant; an auditor bound to a tenant sees only that tenant's events. An export
is itself recorded: who took which slice of the log.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from audit.bundle import archive_bundle
from audit.checkpoint import SigningKey
from audit.errors import ProofUnavailable
from audit.events import Action
from audit.export import export_bundle
from audit.store import EventFilter, append_event, latest_checkpoint, list_events, prove_consistency, prove_inclusion
from gateway.auth import Principal, Role
from gateway.errors import PermissionDenied
from gateway.shared.events import decision_event


@dataclass(frozen=True)
class EventQuery:
    """Which events to read or export; every field optional."""

    since: datetime | None = None
    until: datetime | None = None
    action: Action | None = None
    actor: str | None = None
    voice: str | None = None
    tenant: str | None = None


class AuditService:
    def __init__(self, *, key: SigningKey) -> None:
        self._key = key

    def public_key(self) -> str:
        """The checkpoint verifier key (C2SP signed-note format)."""
        return self._key.verifier.encode() + "\n"

    def checkpoint(self, session: Session) -> dict[str, Any]:
        stored = latest_checkpoint(session)
        return {
            "tree_size": stored.tree_size,
            "root_hash": _b64(stored.root_hash),
            "note": stored.note,
            "created_at": stored.created_at.isoformat(),
        }

    def events(
        self, session: Session, *, principal: Principal, query: EventQuery, after: int, limit: int
    ) -> dict[str, Any]:
        event_filter = _filter(query, tenant=tenant_scope(principal, query.tenant))
        leaves = list_events(session, event_filter=event_filter, after_index=after, limit=limit)
        return {
            "events": [
                {"index": leaf.leaf_index, "leaf_hash": _b64(leaf.leaf_hash), "event": json.loads(leaf.entry)}
                for leaf in leaves
            ],
            "next_after": leaves[-1].leaf_index if len(leaves) == limit else None,
        }

    def inclusion(self, session: Session, *, principal: Principal, index: int, tree_size: int | None) -> dict[str, Any]:
        try:
            leaf, stored, proof = prove_inclusion(session, index=index, size=tree_size)
            if tenant_scope(principal, None) not in (None, leaf.tenant):
                raise ProofUnavailable("the event belongs to a tenant this auditor may not read")
        except ProofUnavailable as exc:
            # One fixed answer for an unknown index, an unpublished size and another tenant's
            # event, so a tenant's auditor cannot probe which events are others'.
            raise ProofUnavailable("no such event in a published checkpoint of that size") from exc
        return {
            "index": index,
            "tree_size": stored.tree_size,
            "entry": bytes(leaf.entry).decode(),
            "leaf_hash": _b64(leaf.leaf_hash),
            "proof": [_b64(item) for item in proof],
            "checkpoint": stored.note,
        }

    def consistency(self, session: Session, *, from_size: int, to_size: int | None) -> dict[str, Any]:
        to_size = latest_checkpoint(session).tree_size if to_size is None else to_size
        proof = prove_consistency(session, old_size=from_size, new_size=to_size)
        return {"from": from_size, "to": to_size, "proof": [_b64(item) for item in proof]}

    def export(self, session: Session, *, principal: Principal, query: EventQuery, workspace: Path) -> Path:
        """A bundle archive in ``workspace``: every event without a filter, a selected bundle with
        inclusion proofs with any. The export is appended to the log in the same transaction."""
        event_filter = _filter(query, tenant=tenant_scope(principal, query.tenant))
        selected = any(value is not None for value in dataclasses.asdict(event_filter).values())
        export_bundle(
            session,
            directory=workspace / "bundle",
            verifier=self._key.verifier,
            event_filter=event_filter if selected else None,
        )
        archive_bundle(workspace / "bundle", workspace / "bundle.tar")
        append_event(session, event=decision_event(principal, action=Action.AUDIT_EXPORTED))
        return workspace / "bundle.tar"


def tenant_scope(principal: Principal, requested: str | None) -> str | None:
    """Admins see every tenant; an auditor bound to a tenant sees only that tenant's events."""
    if Role.ADMIN in principal.roles or principal.tenant is None:
        return requested
    if requested not in (None, principal.tenant):
        raise PermissionDenied(f"this auditor may only read tenant {principal.tenant!r}")
    return principal.tenant


def _filter(query: EventQuery, *, tenant: str | None) -> EventFilter:
    return EventFilter(
        since=_utc(query.since),
        until=_utc(query.until),
        action=query.action.value if query.action else None,
        actor_sub=query.actor,
        voice_id=query.voice,
        tenant=tenant,
    )


def _utc(moment: datetime | None) -> datetime | None:
    """Query times without an offset are taken as UTC (event times are stored in UTC)."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def _b64(data: bytes) -> str:
    return base64.b64encode(bytes(data)).decode()
