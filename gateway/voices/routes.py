"""Voices and their consents after enrollment: listing, reading, revocation, usage, erasure."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path

from gateway.auth import Authenticated
from gateway.dependencies import Owner, SessionDep, VoicesDep
from gateway.enrollment.schemas import HEX_ID
from gateway.errors import PermissionDenied, error_responses
from gateway.voices.schemas import ConsentView, VoiceList, VoiceUsage, VoiceView
from policy.errors import ConsentNotFound, VoiceErased, VoiceNotFound

router = APIRouter(prefix="/v1", tags=["voices"])
VoiceId = Annotated[str, Path(pattern=HEX_ID)]
ConsentId = Annotated[str, Path(pattern=HEX_ID)]


@router.get("/voices", response_model=VoiceList, responses=error_responses(PermissionDenied))
def list_voices(session: SessionDep, principal: Authenticated, service: VoicesDep) -> dict[str, Any]:
    """Owner: its own voices (erased ones too). Client: voices with a live consent for it."""
    return {"voices": service.list_voices(session, principal=principal)}


@router.get("/voices/{voice_id}", response_model=VoiceView, responses=error_responses(PermissionDenied, VoiceNotFound))
def get_voice(voice_id: VoiceId, session: SessionDep, principal: Authenticated, service: VoicesDep) -> dict[str, Any]:
    """The voice and its consents; a client sees only the consents that name it."""
    return service.get_voice(session, principal=principal, voice_id=voice_id)


@router.get("/consents/{consent_id}", response_model=ConsentView, responses=error_responses(ConsentNotFound))
def get_consent(consent_id: ConsentId, session: SessionDep, principal: Owner, service: VoicesDep) -> dict[str, Any]:
    return service.get_consent(session, principal=principal, consent_id=consent_id)


@router.post("/consents/{consent_id}/revoke", response_model=ConsentView, responses=error_responses(ConsentNotFound))
def revoke(consent_id: ConsentId, session: SessionDep, principal: Owner, service: VoicesDep) -> dict[str, Any]:
    """Revoke at once: synthesis re-checks consent before release, so requests in flight stop."""
    return service.revoke(session, principal=principal, consent_id=consent_id)


@router.get("/voices/{voice_id}/usage", response_model=VoiceUsage, responses=error_responses(VoiceNotFound))
def voice_usage(voice_id: VoiceId, session: SessionDep, principal: Owner, service: VoicesDep) -> dict[str, Any]:
    return {"voice_id": voice_id, "usage": service.usage(session, principal=principal, voice_id=voice_id)}


@router.delete("/voices/{voice_id}", response_model=VoiceView, responses=error_responses(VoiceNotFound, VoiceErased))
def erase_voice(voice_id: VoiceId, principal: Owner, service: VoicesDep) -> dict[str, Any]:
    """Erase: recordings, profiles and the voice's key are deleted, its consents revoked."""
    return service.erase(principal=principal, voice_id=voice_id)
