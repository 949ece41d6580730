"""Grant evaluation for the pipeline, revocation, listings and the usage ledger.

``authorize_use`` answers "may this principal synthesize with this voice for this purpose and
language now?" and counts the use in the same step: a single conditional UPDATE increments
``uses`` only while ``uses < max_uses`` and the consent is unrevoked and in its window, so
concurrent requests can never push a consent past ``max_uses``. The voice's owner, acting as
owner, needs no grant: a consent is what the owner gives to others, so the owner's own use has
no consent behind it (``Grant.consent_id`` is None), counts against no grantee's limit, and is
still written to the usage ledger. The counted use is a reservation until the request's first
release; a request that ends without releasing gives it back (``return_use``), in the transaction
that records its outcome. ``recheck`` is the release-time check: the pipeline calls it
after synthesis and releases no audio if it raises (revoked consent, erased voice).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, CursorResult, or_, select, update
from sqlalchemy.orm import Session

from policy.consent.models import Consent, UsageRecord, Voice
from policy.errors import (
    ConsentMissing,
    ConsentNotFound,
    ConsentNotInWindow,
    ConsentRequestInvalid,
    ConsentRevoked,
    ConsentScopeMismatch,
    ConsentUsesExhausted,
    NotVoiceOwner,
    VoiceErased,
    VoiceNotFound,
)


@dataclass(frozen=True)
class Grant:
    """A counted, permitted use: which consent allowed it and how many uses it has had."""

    consent_id: str | None  # None: the voice's owner using their own voice
    voice_id: str
    purpose: str
    language: str
    uses: int
    max_uses: int | None

    @property
    def owner_use(self) -> bool:
        return self.consent_id is None


def _grantee_clause(*, principal_sub: str, tenant: str | None) -> ColumnElement[bool]:
    subject = (Consent.grantee_kind == "subject") & (Consent.grantee_id == principal_sub)
    if tenant is None:
        return subject
    return or_(subject, (Consent.grantee_kind == "tenant") & (Consent.grantee_id == tenant))


def _active_voice(session: Session, voice_id: str, *, fresh: bool = False) -> Voice:
    """The voice unless missing or erased; ``fresh`` re-reads it past the session's cached copy."""
    voice = session.get(Voice, voice_id, populate_existing=fresh)
    if voice is None:
        raise VoiceNotFound(f"no voice {voice_id}")
    if voice.status != "active":
        raise VoiceErased(f"voice {voice_id} was erased")
    return voice


def authorize_use(
    session: Session,
    *,
    voice_id: str,
    principal_iss: str,
    principal_sub: str,
    tenant: str | None,
    purpose: str,
    language: str,
    now: datetime,
    as_owner: bool = False,
) -> Grant:
    """Count one use of a live consent that covers this request, or raise why none does.

    ``principal_iss`` is part of the request identity; grants name subjects and tenants within
    the deployment's trusted issuers, which the gateway's authentication already enforces.
    ``as_owner`` says the principal acts in the owner role; it lets the voice's owner (same
    ``iss`` and ``sub`` as at enrollment) use the voice without a grant, and nobody else.
    """
    if not purpose or not language or now.tzinfo is None:
        raise ConsentRequestInvalid("purpose, language and a timezone-aware time are required")
    voice = session.get(Voice, voice_id)
    if voice is None:
        raise VoiceNotFound(f"no voice {voice_id}")
    if as_owner and (voice.owner_iss, voice.owner_sub) == (principal_iss, principal_sub):
        _active_voice(session, voice_id)
        return Grant(consent_id=None, voice_id=voice_id, purpose=purpose, language=language, uses=0, max_uses=None)
    candidates = session.scalars(
        select(Consent)
        .where(Consent.voice_id == voice_id, _grantee_clause(principal_sub=principal_sub, tenant=tenant))
        .order_by(Consent.created_at)
    ).all()
    # Checked before erasure: someone no consent names learns nothing of the voice, not even
    # that it was erased (the gateway answers this like an unknown id).
    if not candidates:
        raise ConsentMissing(f"no consent grants {principal_sub} the use of voice {voice_id}")
    _active_voice(session, voice_id)
    # Try every consent that covers the request; report the most specific reason if none does.
    reason: Exception | None = None
    for consent in candidates:
        if consent.revoked_at is not None:
            reason = reason or ConsentRevoked(f"consent {consent.id} was revoked")
            continue
        if not consent.not_before <= now < consent.not_after:
            reason = ConsentNotInWindow(
                f"consent {consent.id} is valid from {consent.not_before} to {consent.not_after}"
            )
            continue
        if purpose not in consent.purposes or language not in consent.languages:
            reason = ConsentScopeMismatch(f"consent {consent.id} does not cover purpose {purpose!r} in {language!r}")
            continue
        result = session.execute(
            update(Consent)
            .where(
                Consent.id == consent.id,
                Consent.revoked_at.is_(None),
                Consent.uses < Consent.max_uses,
                Consent.not_before <= now,
                Consent.not_after > now,
            )
            .values(uses=Consent.uses + 1)
            .execution_options(synchronize_session=False)
        )
        if cast("CursorResult[Any]", result).rowcount == 1:
            session.refresh(consent)
            return Grant(
                consent_id=consent.id,
                voice_id=voice_id,
                purpose=purpose,
                language=language,
                uses=consent.uses,
                max_uses=consent.max_uses,
            )
        session.refresh(consent)
        reason = (
            ConsentRevoked(f"consent {consent.id} was revoked")
            if consent.revoked_at is not None
            else ConsentUsesExhausted(f"consent {consent.id} has had all {consent.max_uses} uses")
        )
    raise reason or ConsentMissing(f"no consent grants {principal_sub} the use of voice {voice_id}")


def recheck(session: Session, *, grant: Grant, now: datetime) -> None:
    """Release-time check: raise if the consent was revoked or ran out of its window, or the
    voice was erased (the only thing that can stop an owner's own use).

    Reads the rows fresh from the database (not the session's cached copies), so a revocation
    or erasure committed by another transaction while synthesis ran is seen.
    """
    if not grant.owner_use:
        consent = session.execute(
            select(Consent).where(Consent.id == grant.consent_id).execution_options(populate_existing=True)
        ).scalar_one_or_none()
        if consent is None:
            raise ConsentNotFound(f"no consent {grant.consent_id}")
        if consent.revoked_at is not None:
            raise ConsentRevoked(f"consent {grant.consent_id} was revoked")
        if not consent.not_before <= now < consent.not_after:
            raise ConsentNotInWindow(f"consent {grant.consent_id} is no longer valid")
    _active_voice(session, grant.voice_id, fresh=True)


def return_use(session: Session, *, consent_id: str) -> None:
    """Give back a use ``authorize_use`` counted for a request that released nothing (the engine
    refused or failed, the client left before the first byte, the gateway died with it): only a
    release spends a use. Never below zero, so a use is returned at most as often as counted."""
    session.execute(
        update(Consent)
        .where(Consent.id == consent_id, Consent.uses > 0)
        .values(uses=Consent.uses - 1)
        .execution_options(synchronize_session=False)
    )


def owned_voice(session: Session, *, voice_id: str, owner_iss: str, owner_sub: str) -> Voice:
    voice = session.get(Voice, voice_id)
    if voice is None:
        raise VoiceNotFound(f"no voice {voice_id}")
    if (voice.owner_iss, voice.owner_sub) != (owner_iss, owner_sub):
        # Same answer as "not found" would leak existence; the gateway maps this to 404 or 403.
        raise NotVoiceOwner(f"voice {voice_id} belongs to another owner")
    return voice


def revoke_consent(session: Session, *, consent_id: str, owner_iss: str, owner_sub: str, now: datetime) -> Consent:
    consent = owner_consent(session, consent_id=consent_id, owner_iss=owner_iss, owner_sub=owner_sub)
    session.execute(
        update(Consent)
        .where(Consent.id == consent_id, Consent.revoked_at.is_(None))
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )
    session.refresh(consent)
    return consent


def owner_consent(session: Session, *, consent_id: str, owner_iss: str, owner_sub: str) -> Consent:
    consent = session.get(Consent, consent_id)
    if consent is None:
        raise ConsentNotFound(f"no consent {consent_id}")
    if (consent.owner_iss, consent.owner_sub) != (owner_iss, owner_sub):
        raise NotVoiceOwner(f"consent {consent_id} belongs to another owner")
    return consent


def voices_of_owner(session: Session, *, owner_iss: str, owner_sub: str) -> list[Voice]:
    return list(
        session.scalars(
            select(Voice).where(Voice.owner_iss == owner_iss, Voice.owner_sub == owner_sub).order_by(Voice.created_at)
        )
    )


def voices_granted_to(session: Session, *, principal_sub: str, tenant: str | None, now: datetime) -> list[Voice]:
    """Active voices with a live (unrevoked, in-window, not exhausted) consent for this client."""
    return list(
        session.scalars(
            select(Voice)
            .join(Consent, Consent.voice_id == Voice.id)
            .where(
                Voice.status == "active",
                _grantee_clause(principal_sub=principal_sub, tenant=tenant),
                Consent.revoked_at.is_(None),
                Consent.not_before <= now,
                Consent.not_after > now,
                Consent.uses < Consent.max_uses,
            )
            .distinct()
            .order_by(Voice.id)
        )
    )


def consents_of_voice(session: Session, *, voice_id: str) -> list[Consent]:
    return list(session.scalars(select(Consent).where(Consent.voice_id == voice_id).order_by(Consent.created_at)))


def record_usage(
    session: Session,
    *,
    grant: Grant,
    principal_iss: str,
    principal_sub: str,
    tenant: str | None,
    text_sha256: str,
    audit_index: int | None,
    now: datetime,
) -> UsageRecord:
    """Ledger row for a released synthesis (ids and a text hash only, no text, no audio)."""
    if len(text_sha256) != 64:
        raise ConsentRequestInvalid("text_sha256 must be a hex SHA-256")
    row = UsageRecord(
        voice_id=grant.voice_id,
        consent_id=grant.consent_id,
        principal_iss=principal_iss,
        principal_sub=principal_sub,
        tenant=tenant,
        purpose=grant.purpose,
        language=grant.language,
        text_sha256=text_sha256,
        audit_index=audit_index,
        created_at=now,
    )
    session.add(row)
    session.flush()
    return row


def usage_of_voice(session: Session, *, voice_id: str, owner_iss: str, owner_sub: str) -> list[UsageRecord]:
    owned_voice(session, voice_id=voice_id, owner_iss=owner_iss, owner_sub=owner_sub)
    return list(session.scalars(select(UsageRecord).where(UsageRecord.voice_id == voice_id).order_by(UsageRecord.id)))
