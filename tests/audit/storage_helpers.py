"""Shared helpers for the audit storage tests (plain functions, not fixtures)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.orm import Session

from audit.events import Action, Actor, AuditEvent, Decision, Subjects

ORIGIN = "clonegate.test/audit"
START = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def event(i: int, *, tenant: str = "acme", action: Action = Action.REQUEST_ADMITTED) -> AuditEvent:
    denied = action is Action.REQUEST_DENIED
    return AuditEvent(
        action=action,
        decision=Decision.DENY if denied else Decision.ALLOW,
        reason="consent_missing" if denied else None,
        actor=Actor(iss="https://issuer.example", sub=f"user-{i % 4}", role="operator", tenant=tenant),
        subjects=Subjects(request_id=f"req-{i}", voice_id=f"voice-{i % 3}"),
        time=START + timedelta(seconds=i),
        event_id=f"event-{i}",
    )


def disable_append_only(session: Session) -> None:
    """What an attacker with owner rights on the database does first."""
    if session.get_bind().dialect.name == "postgresql":
        for table in ("audit_leaves", "audit_nodes", "audit_checkpoints"):
            session.execute(text(f"ALTER TABLE {table} DISABLE TRIGGER {table}_append_only"))
    else:
        for table in ("audit_leaves", "audit_nodes", "audit_checkpoints"):
            for operation in ("update", "delete"):
                session.execute(text(f"DROP TRIGGER {table}_no_{operation}"))
