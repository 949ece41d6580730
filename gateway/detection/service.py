"""Detection: was this audio marked by this gateway, where, and (to those entitled) by which
request.

Anyone authenticated may ask whether audio carries a mark and where. The audit event behind a
payload, with its inclusion proof, is shown only to auditors and admins and to the tenant whose
request produced it. A payload that verifies (or is attributed within the false-positive bound)
but names no event is reported as unknown; a payload that does not verify is never looked up.
"""

from __future__ import annotations

import base64
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from audit.errors import AuditEventNotFound, ProofUnavailable
from audit.events import AuditEvent
from audit.store import find_event, prove_inclusion
from gateway.audio_io import decode_audio
from gateway.auth import Permission, Principal
from gateway.detection.verdict import verdict
from gateway.shared.transactions import database_errors
from watermark import PAYLOAD_BYTES, WatermarkStack

WITHHELD = {"status": "withheld", "detail": "the producing request is shown to auditors and to its tenant"}


class DetectionService:
    def __init__(self, *, sessions: sessionmaker[Session], watermark: WatermarkStack) -> None:
        self._sessions = sessions
        self._watermark = watermark

    def detect(self, *, principal: Principal | None, audio: bytes) -> dict[str, Any]:
        """Per scheme: detected, score, false-positive probability and marked segments; the verdict
        in words (resting only on layers with a computed bound); the source of a payload the keyed
        layer decoded or attributed, as far as this caller may know it."""
        decoded = decode_audio(audio)
        found = self._watermark.detect(decoded.samples, sample_rate=decoded.sample_rate)
        answer: dict[str, Any] = found.as_json()
        answer["verdict"] = verdict(found)
        answer["duration_seconds"] = round(decoded.duration_seconds, 3)
        keyed = next((d for d in found.schemes if d.scheme == "keyed"), None)
        if (
            keyed is not None
            and (keyed.payload_verified or keyed.payload_source == "attributed")
            and keyed.payload is not None
            and len(keyed.payload) == PAYLOAD_BYTES
        ):
            with self._sessions() as session, database_errors():
                answer["source"] = resolve_payload(session, payload=keyed.payload, principal=principal)
        else:
            answer["source"] = None
        return answer


def _may_see(principal: Principal | None, event: AuditEvent) -> bool:
    if principal is None:
        return False
    return principal.has(Permission.RESOLVE_WATERMARK) or (
        principal.tenant is not None and principal.tenant == event.actor.tenant
    )


def resolve_payload(session: Session, *, payload: bytes, principal: Principal | None) -> dict[str, Any]:
    """What a verified payload points at, as far as this caller may know."""
    audit_id = int.from_bytes(payload, "big")
    try:
        logged = find_event(session, pending_id=audit_id)
    except AuditEventNotFound:
        # Only those who may see every event learn that none exists; to anyone else an unknown
        # id looks like another tenant's, so payloads cannot be probed for existence.
        if principal is not None and principal.has(Permission.RESOLVE_WATERMARK):
            return {"status": "unknown", "audit_id": audit_id}
        return dict(WITHHELD)
    event = AuditEvent.from_canonical_bytes(logged.entry)
    if not _may_see(principal, event):
        return dict(WITHHELD)
    resolved: dict[str, Any] = {
        "status": "resolved",
        "audit_id": audit_id,
        "event": event.to_dict(),
        "leaf_index": logged.leaf_index,
    }
    if logged.leaf_index is not None:
        try:
            leaf, checkpoint, proof = prove_inclusion(session, index=logged.leaf_index)
            resolved["inclusion_proof"] = {
                "tree_size": checkpoint.tree_size,
                "leaf_hash": base64.b64encode(bytes(leaf.leaf_hash)).decode(),
                "proof": [base64.b64encode(bytes(node)).decode() for node in proof],
                "checkpoint": checkpoint.note,
            }
        except ProofUnavailable:
            resolved["inclusion_proof"] = None  # integrated after the latest signed checkpoint
    return resolved
