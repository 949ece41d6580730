"""A request's lease: taken with its admission, held while it runs, deleted with its outcome.

Each function works in the caller's transaction, so the outcome event, the reservation given back
and the lease's deletion commit together or not at all. The lease row is what makes an outcome
happen once: the replica running the request closes it on release, failure or cancellation;
another replica closes it (``request.abandoned``) only once the replica that held it is gone.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from audit.events import Action, Actor, AuditEvent, Decision, Digests, Subjects
from gateway.errors import GatewayError
from gateway.replicas.models import RequestLease
from policy.consent.grants import return_use

# Reason codes of `request.abandoned` and of a shutdown's `request.cancelled`.
GATEWAY_RESTARTED = "gateway_restarted"  # the replica that ran it has ended (its database session is gone)
LEASE_EXPIRED = "lease_expired"  # the replica that ran it stopped renewing its heartbeat
SHUTDOWN = "shutdown"  # the replica was told to stop and the request did not finish in time


class LeaseLost(GatewayError):
    """This replica no longer holds the request: another replica closed it as abandoned (this one
    missed its heartbeats). Nothing is released for a request that already has an outcome."""

    code = "request_lease_lost"
    status = 503


def open_lease(
    session: Session,
    *,
    request_id: str,
    replica_id: int,
    voice_id: str,
    consent_id: str | None,
    actor: Actor,
    text_sha256: str,
    now: datetime,
) -> None:
    """Lease an admitted request to this replica; a consent's counted use is reserved with it."""
    session.add(
        RequestLease(
            request_id=request_id,
            replica_id=replica_id,
            voice_id=voice_id,
            consent_id=consent_id,
            use_reserved=consent_id is not None,
            actor_iss=actor.iss,
            actor_sub=actor.sub,
            actor_role=actor.role,
            actor_tenant=actor.tenant,
            text_sha256=text_sha256,
            admitted_at=now,
        )
    )
    session.flush()


def hold(session: Session, *, request_id: str, replica_id: int) -> RequestLease:
    """The lease, locked for this transaction, if this replica still holds it; else `LeaseLost`."""
    lease = session.scalars(
        select(RequestLease)
        .where(RequestLease.request_id == request_id, RequestLease.replica_id == replica_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one_or_none()
    if lease is None:
        raise LeaseLost(f"request {request_id} was closed by another replica while this one ran it")
    return lease


def find_held(session: Session, *, request_id: str, replica_id: int) -> RequestLease | None:
    try:
        return hold(session, request_id=request_id, replica_id=replica_id)
    except LeaseLost:
        return None


def spend_use(lease: RequestLease) -> None:
    """The first release spends the reserved use: from now on the request has used it."""
    lease.use_reserved = False


def close(session: Session, lease: RequestLease) -> None:
    """Delete the lease, giving back a use still reserved (the request released nothing)."""
    if lease.use_reserved and lease.consent_id is not None:
        return_use(session, consent_id=lease.consent_id)
    session.delete(lease)
    session.flush()


def abandoned_event(lease: RequestLease, *, reason: str) -> AuditEvent:
    """`request.abandoned`: the replica running the request ended without an outcome for it."""
    return AuditEvent(
        action=Action.REQUEST_ABANDONED,
        decision=Decision.NONE,
        actor=Actor(iss=lease.actor_iss, sub=lease.actor_sub, role=lease.actor_role, tenant=lease.actor_tenant),
        reason=reason,
        subjects=Subjects(voice_id=lease.voice_id, consent_id=lease.consent_id, request_id=lease.request_id),
        digests=Digests(text_sha256=lease.text_sha256),
    )
