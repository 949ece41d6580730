"""Audit events of decisions taken by a principal, built the same way by every use case."""

from __future__ import annotations

from audit.events import Action, AuditEvent, Decision, Digests, Subjects
from gateway.auth import Principal
from gateway.shared.actors import actor_of


def decision_event(
    principal: Principal,
    *,
    action: Action,
    decision: Decision = Decision.NONE,
    reason: str | None = None,
    subjects: Subjects | None = None,
    digests: Digests | None = None,
) -> AuditEvent:
    """An event recording what `principal` did (or was refused)."""
    return AuditEvent(
        action=action,
        decision=decision,
        actor=actor_of(principal),
        reason=reason,
        subjects=subjects or Subjects(),
        digests=digests or Digests(),
    )


def denial_event(
    principal: Principal,
    *,
    action: Action,
    reason: str,
    voice_id: str | None = None,
    consent_id: str | None = None,
    protected_entry_id: str | None = None,
    references: tuple[str, ...] = (),
) -> AuditEvent:
    """A refusal, with the digests of what the caller uploaded."""
    return decision_event(
        principal,
        action=action,
        decision=Decision.DENY,
        reason=reason,
        subjects=Subjects(voice_id=voice_id, consent_id=consent_id, protected_entry_id=protected_entry_id),
        digests=Digests(reference_sha256=references),
    )
