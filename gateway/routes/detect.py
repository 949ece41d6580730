"""`POST /v1/detect`: was this audio marked by this gateway, where, and (to those entitled) by
which request.

Anyone authenticated may ask whether audio carries a mark and where. The audit event behind a
verified payload, with its inclusion proof, is shown only to auditors and admins and to the
tenant whose request produced it. A payload that verifies but names no event is reported as
unknown; a payload that does not verify is never looked up.
"""

from __future__ import annotations

import base64
import threading
import time
from typing import Annotated

import anyio
from fastapi import APIRouter, Depends, File, Request, UploadFile
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from audit.errors import AuditEventNotFound, ProofUnavailable
from audit.events import AuditEvent
from audit.store import find_event, prove_inclusion
from gateway.audio_io import decode_audio
from gateway.auth import Permission, Principal
from gateway.errors import AuthenticationFailed, GatewayError, PermissionDenied
from watermark import PAYLOAD_BYTES

router = APIRouter(prefix="/v1", tags=["detect"])


class DetectRateLimited(GatewayError):
    code = "detect_rate_limited"
    status = 429

    def __init__(self, detail: str, *, retry_after: float) -> None:
        super().__init__(detail)
        self.headers = {"Retry-After": str(max(1, round(retry_after)))}


class AnonymousRateLimiter:
    """A token bucket per client address, for anonymous detection only."""

    def __init__(self, *, per_minute: int) -> None:
        self._rate = per_minute / 60.0
        self._capacity = float(per_minute)
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, client: str) -> None:
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(client, (self._capacity, now))
            tokens = min(self._capacity, tokens + (now - last) * self._rate)
            if tokens < 1.0:
                self._buckets[client] = (tokens, now)
                raise DetectRateLimited("too many anonymous detection requests", retry_after=(1 - tokens) / self._rate)
            self._buckets[client] = (tokens - 1.0, now)


_optional_bearer = HTTPBearer(auto_error=False)


def detect_caller(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_optional_bearer)]
) -> Principal | None:
    """The authenticated caller, or None for an anonymous caller where the operator allows it."""
    if credentials is not None:
        principal = request.app.state.token_verifier.verify(credentials.credentials)
        if not principal.has(Permission.DETECT):
            raise PermissionDenied("this token may not use the detector")
        return principal
    if not request.app.state.settings.detect_allow_anonymous:
        raise AuthenticationFailed("a bearer token is required", code="token_missing")
    request.app.state.detect_rate_limiter.take(request.client.host if request.client else "unknown")
    return None


def _may_see(principal: Principal | None, event: AuditEvent) -> bool:
    if principal is None:
        return False
    return principal.has(Permission.RESOLVE_WATERMARK) or (
        principal.tenant is not None and principal.tenant == event.actor.tenant
    )


def resolve_payload(session: Session, *, payload: bytes, principal: Principal | None) -> dict:
    """What a verified payload points at, as far as this caller may know."""
    audit_id = int.from_bytes(payload, "big")
    try:
        logged = find_event(session, pending_id=audit_id)
    except AuditEventNotFound:
        return {"status": "unknown", "audit_id": audit_id}
    event = AuditEvent.from_canonical_bytes(logged.entry)
    if not _may_see(principal, event):
        return {"status": "withheld", "detail": "the producing request is shown to auditors and to its tenant"}
    resolved = {"status": "resolved", "audit_id": audit_id, "event": event.to_dict(), "leaf_index": logged.leaf_index}
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


@router.post("/detect")
async def detect(
    request: Request,
    principal: Annotated[Principal | None, Depends(detect_caller)],
    audio: Annotated[UploadFile, File(description="wav, flac, mp3, ogg, m4a or webm")],
) -> dict:
    """Per scheme: detected, score, false-positive probability and marked segments."""
    data = await audio.read()
    stack = request.app.state.components.watermark

    def run() -> tuple:
        decoded = decode_audio(data)
        return decoded, stack.detect(decoded.samples, sample_rate=decoded.sample_rate)

    decoded, found = await anyio.to_thread.run_sync(run)
    answer = found.as_json()
    answer["duration_seconds"] = round(decoded.duration_seconds, 3)
    keyed = next((d for d in found.schemes if d.scheme == "keyed"), None)
    if (
        keyed is not None
        and keyed.payload_verified
        and keyed.payload is not None
        and len(keyed.payload) == PAYLOAD_BYTES
    ):
        with request.app.state.session_factory() as session:
            answer["source"] = resolve_payload(session, payload=keyed.payload, principal=principal)
    else:
        answer["source"] = None
    return answer
