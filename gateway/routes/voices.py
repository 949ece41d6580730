"""Voices and their consents after enrollment: listing, reading, revocation, usage, erasure.

Another owner's voice or consent answers 404 exactly like a missing one, so ids cannot be
probed; a client sees only voices with a live consent for its tenant or subject.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from sqlalchemy.orm import Session

from audit.events import Action, AuditEvent, Decision, Subjects
from audit.store import append_event
from gateway.auth import Authenticated, Permission, Principal, require
from gateway.db import SessionDep
from gateway.enrollment import utcnow
from gateway.errors import PermissionDenied
from gateway.pipeline.steps import actor_of
from policy.consent.grants import (
    consents_of_voice,
    owned_voice,
    owner_consent,
    revoke_consent,
    usage_of_voice,
    voices_granted_to,
    voices_of_owner,
)
from policy.consent.models import Consent, Voice
from policy.consent.storage import erase_voice_data, purge_erased_remnants
from policy.errors import ConsentNotFound, NotVoiceOwner, VoiceNotFound

router = APIRouter(prefix="/v1", tags=["voices"])
Owner = Annotated[Principal, require(Permission.MANAGE_OWN_VOICES)]
# Voice and consent ids are 16 random bytes in hex; anything else is refused before a query.
VoiceId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$")]
ConsentId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$")]


def _voice_dict(voice: Voice) -> dict:
    return {
        "voice_id": voice.id,
        "owner_name": voice.owner_name,
        "status": voice.status,
        "profile_version": voice.profile_version,
        "created_at": voice.created_at.isoformat(),
        "erased_at": voice.erased_at.isoformat() if voice.erased_at else None,
    }


def consent_dict(consent: Consent) -> dict:
    return {
        "consent_id": consent.id,
        "voice_id": consent.voice_id,
        "grantee_kind": consent.grantee_kind,
        "grantee_id": consent.grantee_id,
        "purposes": list(consent.purposes),
        "languages": list(consent.languages),
        "not_before": consent.not_before.isoformat(),
        "not_after": consent.not_after.isoformat(),
        "max_uses": consent.max_uses,
        "uses": consent.uses,
        "created_at": consent.created_at.isoformat(),
        "revoked_at": consent.revoked_at.isoformat() if consent.revoked_at else None,
    }


def voice_view(session: Session, *, voice_id: str) -> dict:
    voice = session.get(Voice, voice_id)
    if voice is None:
        raise VoiceNotFound(f"no voice {voice_id}")
    return {**_voice_dict(voice), "consents": [consent_dict(c) for c in consents_of_voice(session, voice_id=voice_id)]}


def _own_voice(session: Session, *, voice_id: str, principal: Principal) -> Voice:
    try:
        return owned_voice(session, voice_id=voice_id, owner_iss=principal.issuer, owner_sub=principal.subject)
    except NotVoiceOwner as exc:
        raise VoiceNotFound(f"no voice {voice_id}") from exc


def _own_consent(session: Session, *, consent_id: str, principal: Principal) -> Consent:
    try:
        return owner_consent(session, consent_id=consent_id, owner_iss=principal.issuer, owner_sub=principal.subject)
    except NotVoiceOwner as exc:
        raise ConsentNotFound(f"no consent {consent_id}") from exc


def _granted(session: Session, *, principal: Principal) -> list[Voice]:
    return voices_granted_to(session, principal_sub=principal.subject, tenant=principal.tenant, now=utcnow())


def _reader_kind(principal: Principal) -> str:
    # A token may carry both roles: an owner always sees its own voices first.
    if principal.has(Permission.MANAGE_OWN_VOICES):
        return "owner"
    if principal.has(Permission.READ_GRANTED_VOICES):
        return "client"
    raise PermissionDenied("listing voices needs the manage_own_voices or read_granted_voices permission")


@router.get("/voices")
def list_voices(session: SessionDep, principal: Authenticated) -> dict:
    """Owner: its own voices (erased ones too). Client: voices with a live consent for it."""
    if _reader_kind(principal) == "owner":
        voices = voices_of_owner(session, owner_iss=principal.issuer, owner_sub=principal.subject)
    else:
        voices = _granted(session, principal=principal)
    return {"voices": [_voice_dict(voice) for voice in voices]}


@router.get("/voices/{voice_id}")
def get_voice(voice_id: VoiceId, session: SessionDep, principal: Authenticated) -> dict:
    if _reader_kind(principal) == "owner":
        _own_voice(session, voice_id=voice_id, principal=principal)
        return voice_view(session, voice_id=voice_id)
    if voice_id not in {voice.id for voice in _granted(session, principal=principal)}:
        raise VoiceNotFound(f"no voice {voice_id}")
    voice = session.get(Voice, voice_id)
    # A client learns which of its grants exist, never the owner's other grantees.
    mine = [
        consent_dict(c)
        for c in consents_of_voice(session, voice_id=voice_id)
        if (c.grantee_kind, c.grantee_id) in {("subject", principal.subject), ("tenant", principal.tenant)}
    ]
    return {**_voice_dict(voice), "consents": mine}


@router.get("/consents/{consent_id}")
def get_consent(consent_id: ConsentId, session: SessionDep, principal: Owner) -> dict:
    return consent_dict(_own_consent(session, consent_id=consent_id, principal=principal))


@router.post("/consents/{consent_id}/revoke")
def revoke(consent_id: ConsentId, session: SessionDep, principal: Owner) -> dict:
    """Revoke at once: synthesis re-checks consent before release, so requests in flight stop."""
    consent = _own_consent(session, consent_id=consent_id, principal=principal)
    already = consent.revoked_at is not None
    consent = revoke_consent(
        session, consent_id=consent_id, owner_iss=principal.issuer, owner_sub=principal.subject, now=utcnow()
    )
    if not already:  # repeating the call changes nothing and records nothing
        append_event(
            session,
            event=AuditEvent(
                action=Action.CONSENT_REVOKED,
                decision=Decision.NONE,
                actor=actor_of(principal),
                subjects=Subjects(voice_id=consent.voice_id, consent_id=consent.id),
            ),
        )
    return consent_dict(consent)


@router.get("/voices/{voice_id}/usage")
def voice_usage(voice_id: VoiceId, session: SessionDep, principal: Owner) -> dict:
    _own_voice(session, voice_id=voice_id, principal=principal)
    records = usage_of_voice(session, voice_id=voice_id, owner_iss=principal.issuer, owner_sub=principal.subject)
    return {
        "voice_id": voice_id,
        "usage": [
            {
                "consent_id": r.consent_id,
                "principal_sub": r.principal_sub,
                "tenant": r.tenant,
                "purpose": r.purpose,
                "language": r.language,
                "text_sha256": r.text_sha256,
                "audit_index": r.audit_index,
                "created_at": r.created_at.isoformat(),
            }
            for r in records
        ],
    }


@router.delete("/voices/{voice_id}")
def erase_voice(voice_id: VoiceId, request: Request, principal: Owner) -> dict:
    """Erase: recordings, profiles and the voice's key are deleted, its consents revoked.

    Committed here rather than by the request dependency: the database's old page copies
    (SQLite WAL, PostgreSQL dead tuples) can only be purged after the erasure committed.
    """
    with request.app.state.session_factory() as session:
        _own_voice(session, voice_id=voice_id, principal=principal)
        erase_voice_data(session, voice_id=voice_id, now=utcnow())
        append_event(
            session,
            event=AuditEvent(
                action=Action.VOICE_ERASED,
                decision=Decision.NONE,
                actor=actor_of(principal),
                subjects=Subjects(voice_id=voice_id),
            ),
        )
        session.commit()
        view = voice_view(session, voice_id=voice_id)
    purge_erased_remnants(request.app.state.db_engine)
    return view
