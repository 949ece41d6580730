"""Exceptions to the protected-speaker list (admin): one voice allowed past one entry, because
the protected person consented to it.

The consenting speaker must *be* the protected person (grant_exception scores the consent
recording against the entry). The recording comes from the consent domain, never from the
admin's say-so:

- ``voice_id``: an enrolled voice; its stored, verified consent recording and live consent.
- ``challenge_id`` + ``consent_recording``: the protected person's own unused consent challenge
  (issued to them by ``POST /v1/consent/challenges``) and their reading of it, which is
  verified here (statement, phrase, no watermark). The exception is keyed ``challenge:<id>``,
  so only an enrollment with that very challenge gets through; enrollment moves it to the new
  voice.
"""

from __future__ import annotations

from typing import Annotated

import anyio
from fastapi import APIRouter, File, Form, Request, UploadFile
from pydantic import BaseModel, Field

from audit.events import Action, AuditEvent, Decision, Subjects
from audit.store import append_event
from gateway.auth import Permission, Principal, require
from gateway.enrollment import (
    CONSENT_MAX_SECONDS,
    read_upload,
    utcnow,
    verify_reading,
)
from gateway.pipeline.steps import actor_of
from policy.blocklist.repository import grant_exception, revoke_exception
from policy.consent.grants import consents_of_voice
from policy.consent.models import ConsentChallenge, Voice
from policy.consent.storage import load_samples
from policy.errors import (
    BlocklistExceptionRefused,
    ChallengeAlreadyUsed,
    ChallengeExpired,
    ChallengeNotFound,
    VoiceErased,
    VoiceNotFound,
)

router = APIRouter()
ListAdmin = Annotated[Principal, require(Permission.MANAGE_BLOCKLIST)]
VOICE_KEY = r"^[0-9a-f]{32}$"


def _voice_consent(request: Request, session, *, voice_id: str):
    """(consent id, consent-recording embedding) of an enrolled, active voice."""
    voice = session.get(Voice, voice_id)
    if voice is None:
        raise VoiceNotFound(f"no voice {voice_id}")
    if voice.status != "active":
        raise VoiceErased(f"voice {voice_id} was erased")
    live = [c for c in consents_of_voice(session, voice_id=voice_id) if c.revoked_at is None]
    if not live:
        raise BlocklistExceptionRefused(f"voice {voice_id} has no live consent to rest an exception on")
    components = request.app.state.components
    (audio, rate), *_ = load_samples(
        session, voice_id=voice_id, kind="consent", key_encryption_key=components.voices.key_encryption_key
    )
    return live[-1].id, components.embedder.embed(audio, sample_rate=rate)


def _challenge_consent(request: Request, session, *, challenge_id: str, audio, sample_rate: int):
    """(``challenge:<id>``, embedding) after the reading of an unused challenge verified."""
    challenge = session.get(ConsentChallenge, challenge_id)
    if challenge is None:
        raise ChallengeNotFound(f"no challenge {challenge_id}")
    if challenge.used_at is not None:
        raise ChallengeAlreadyUsed("an exception must be granted before the challenge is used")
    if utcnow() >= challenge.expires_at:
        raise ChallengeExpired("this challenge has expired")
    components = request.app.state.components
    # Verified, not consumed: the challenge stays unused for the owner's own enrollment.
    verify_reading(
        challenge=challenge, templates=None, watermark=components.watermark, audio=audio, sample_rate=sample_rate
    )
    return f"challenge:{challenge_id}", components.embedder.embed(audio, sample_rate=sample_rate)


@router.post("/entries/{entry_id}/exceptions", status_code=201)
async def grant(
    entry_id: int,
    request: Request,
    principal: ListAdmin,
    note: Annotated[str, Form(min_length=1, max_length=4000)],
    voice_id: Annotated[str | None, Form(pattern=VOICE_KEY)] = None,
    challenge_id: Annotated[str | None, Form(pattern=VOICE_KEY)] = None,
    consent_recording: Annotated[UploadFile | None, File()] = None,
) -> dict:
    if (voice_id is None) == (challenge_id is None) or (challenge_id is not None) != (consent_recording is not None):
        raise BlocklistExceptionRefused("give either voice_id, or challenge_id with consent_recording")
    decoded = await read_upload(consent_recording, max_seconds=CONSENT_MAX_SECONDS) if consent_recording else None

    def store() -> dict:
        components = request.app.state.components
        snapshot = components.blocklist.snapshot()
        with request.app.state.session_factory() as session:
            if voice_id is not None:
                consent_id, embedding = _voice_consent(request, session, voice_id=voice_id)
                key = voice_id
            else:
                consent_id, embedding = _challenge_consent(
                    request, session, challenge_id=challenge_id, audio=decoded.samples, sample_rate=decoded.sample_rate
                )
                key = consent_id
            row = grant_exception(
                session,
                cohort=snapshot.index.cohort,
                deny_threshold=components.blocklist.thresholds.deny,
                normalization=components.blocklist.normalization,
                entry_id=entry_id,
                voice_id=key,
                consent_grant_id=consent_id,
                consent_speaker_embedding=embedding,
                embedder_name=components.embedder.name,
                note=note,
                actor=f"{principal.issuer}|{principal.subject}",
            )
            append_event(session, event=_event(principal, entry_id=entry_id, voice_key=key, granted=True))
            session.commit()
            view = {
                "entry_id": entry_id,
                "voice_id": row.voice_id,
                "consent_grant_id": row.consent_grant_id,
                "consent_score": round(row.consent_score, 2),
                "granted_at": row.granted_at.isoformat(),
            }
        components.blocklist.refresh(force=True)
        return view

    return await anyio.to_thread.run_sync(store)


def _event(principal: Principal, *, entry_id: int, voice_key: str, granted: bool) -> AuditEvent:
    # An exception rests on the protected person's own consent to one voice; before enrollment the
    # voice is known only by its challenge, which goes into request_id.
    voice = voice_key if not voice_key.startswith("challenge:") else None
    return AuditEvent(
        action=Action.PROTECTED_SPEAKER_EXCEPTION_GRANTED if granted else Action.PROTECTED_SPEAKER_EXCEPTION_REVOKED,
        decision=Decision.ALLOW if granted else Decision.NONE,
        actor=actor_of(principal),
        reason="blocklist_exception_granted" if granted else "blocklist_exception_revoked",
        subjects=Subjects(
            voice_id=voice, protected_entry_id=str(entry_id), request_id=voice_key if voice is None else None
        ),
    )


class RevokeBody(BaseModel):
    voice_id: str = Field(pattern=r"^([0-9a-f]{32}|challenge:[0-9a-f]{32})$")


@router.post("/entries/{entry_id}/exceptions/revoke")
def revoke(entry_id: int, body: RevokeBody, request: Request, principal: ListAdmin) -> dict:
    with request.app.state.session_factory() as session:
        row = revoke_exception(
            session, entry_id=entry_id, voice_id=body.voice_id, actor=f"{principal.issuer}|{principal.subject}"
        )
        append_event(session, event=_event(principal, entry_id=entry_id, voice_key=body.voice_id, granted=False))
        session.commit()
        view = {"entry_id": entry_id, "voice_id": row.voice_id, "revoked_at": row.revoked_at.isoformat()}
    request.app.state.components.blocklist.refresh(force=True)
    return view
