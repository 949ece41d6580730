"""Voices and their consents after enrollment.

Another owner's voice or consent answers 404 exactly like a missing one, so ids cannot be
probed; a client sees only voices with a live consent for its tenant or subject. Reads and the
revocation run in the request's session (the request dependency commits); erasure commits by
itself, because the database's old page copies can only be purged after it committed.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from audit.events import Action, Subjects
from audit.store import append_event
from gateway.auth import Permission, Principal
from gateway.errors import PermissionDenied
from gateway.shared.clock import utcnow
from gateway.shared.events import decision_event
from gateway.shared.transactions import transaction
from gateway.voices.views import consent_dict, usage_dict, voice_dict, voice_view
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


class VoicesService:
    def __init__(self, *, sessions: sessionmaker[Session], db_engine: Engine) -> None:
        self._sessions = sessions
        self._db_engine = db_engine

    def list_voices(self, session: Session, *, principal: Principal) -> list[dict[str, Any]]:
        """Owner: its own voices (erased ones too). Client: voices with a live consent for it."""
        if _reader_kind(principal) == "owner":
            voices = voices_of_owner(session, owner_iss=principal.issuer, owner_sub=principal.subject)
        else:
            voices = _granted(session, principal=principal)
        return [voice_dict(voice) for voice in voices]

    def get_voice(self, session: Session, *, principal: Principal, voice_id: str) -> dict[str, Any]:
        if _reader_kind(principal) == "owner":
            _own_voice(session, voice_id=voice_id, principal=principal)
            return voice_view(session, voice_id=voice_id)
        if voice_id not in {voice.id for voice in _granted(session, principal=principal)}:
            raise VoiceNotFound(f"no voice {voice_id}")
        voice = session.get(Voice, voice_id)
        assert voice is not None  # granted voices exist
        # A client learns which of its grants exist, never the owner's other grantees.
        mine = [
            consent_dict(c)
            for c in consents_of_voice(session, voice_id=voice_id)
            if (c.grantee_kind, c.grantee_id) in {("subject", principal.subject), ("tenant", principal.tenant)}
        ]
        return {**voice_dict(voice), "consents": mine}

    def get_consent(self, session: Session, *, principal: Principal, consent_id: str) -> dict[str, Any]:
        return consent_dict(_own_consent(session, consent_id=consent_id, principal=principal))

    def revoke(self, session: Session, *, principal: Principal, consent_id: str) -> dict[str, Any]:
        """Revoke at once: synthesis re-checks consent before release, so requests in flight stop."""
        consent = _own_consent(session, consent_id=consent_id, principal=principal)
        already = consent.revoked_at is not None
        consent = revoke_consent(
            session, consent_id=consent_id, owner_iss=principal.issuer, owner_sub=principal.subject, now=utcnow()
        )
        if not already:  # repeating the call changes nothing and records nothing
            append_event(
                session,
                event=decision_event(
                    principal,
                    action=Action.CONSENT_REVOKED,
                    subjects=Subjects(voice_id=consent.voice_id, consent_id=consent.id),
                ),
            )
        return consent_dict(consent)

    def usage(self, session: Session, *, principal: Principal, voice_id: str) -> list[dict[str, Any]]:
        _own_voice(session, voice_id=voice_id, principal=principal)
        records = usage_of_voice(session, voice_id=voice_id, owner_iss=principal.issuer, owner_sub=principal.subject)
        return [usage_dict(record) for record in records]

    def erase(self, *, principal: Principal, voice_id: str) -> dict[str, Any]:
        """Recordings, profiles and the voice's key are deleted, its consents revoked; then the
        database's old copies of the erased pages (SQLite WAL, PostgreSQL dead tuples) are purged."""
        with transaction(self._sessions) as session:
            _own_voice(session, voice_id=voice_id, principal=principal)
            erase_voice_data(session, voice_id=voice_id, now=utcnow())
            append_event(
                session,
                event=decision_event(principal, action=Action.VOICE_ERASED, subjects=Subjects(voice_id=voice_id)),
            )
        with self._sessions() as session:
            view = voice_view(session, voice_id=voice_id)
        purge_erased_remnants(self._db_engine)
        return view


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
