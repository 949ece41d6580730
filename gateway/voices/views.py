"""Voices, consents and usage records as the API shows them."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from policy.consent.grants import consents_of_voice
from policy.consent.models import Consent, UsageRecord, Voice
from policy.errors import VoiceNotFound


def voice_dict(voice: Voice) -> dict[str, Any]:
    return {
        "voice_id": voice.id,
        "owner_name": voice.owner_name,
        "status": voice.status,
        "profile_version": voice.profile_version,
        "created_at": voice.created_at.isoformat(),
        "erased_at": voice.erased_at.isoformat() if voice.erased_at else None,
    }


def consent_dict(consent: Consent) -> dict[str, Any]:
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


def usage_dict(record: UsageRecord) -> dict[str, Any]:
    return {
        "consent_id": record.consent_id,
        "principal_sub": record.principal_sub,
        "tenant": record.tenant,
        "purpose": record.purpose,
        "language": record.language,
        "text_sha256": record.text_sha256,
        "audit_index": record.audit_index,
        "created_at": record.created_at.isoformat(),
    }


def voice_view(session: Session, *, voice_id: str) -> dict[str, Any]:
    """The voice with every consent it has."""
    voice = session.get(Voice, voice_id)
    if voice is None:
        raise VoiceNotFound(f"no voice {voice_id}")
    return {**voice_dict(voice), "consents": [consent_dict(c) for c in consents_of_voice(session, voice_id=voice_id)]}
