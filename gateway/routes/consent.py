"""Consent: challenges, enrollment of a voice, more reference samples (role `owner`).

Enrollment runs in two transactions. The first consumes the challenge and commits, so a failed
check can never hand the challenge back for another try. The second runs checks a-f, prepares
the engine's voice profile, stores everything and appends `consent.granted` and
`voice.enrolled`; any failure rolls it back and commits a `consent.denied` event (reason = the
error code) on its own.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import anyio
from fastapi import APIRouter, File, Form, Path, Request, UploadFile
from pydantic import BaseModel, Field

from audit.events import Action, AuditEvent, Decision, Digests, Subjects
from audit.store import append_event
from gateway.audit_hooks import record_refusal
from gateway.auth import Principal
from gateway.db import SessionDep
from gateway.enrollment import (
    CONSENT_MAX_SECONDS,
    REFERENCE_MAX_SECONDS,
    as_recording,
    check_reference_count,
    consume_committed,
    denial_event,
    prepare_engine_profile,
    read_upload,
    reason_code,
    recognizer,
    reference_digests,
    require_ready_checks,
    utcnow,
    watermark_detector,
)
from gateway.pipeline.steps import actor_of
from gateway.routes.voices import Owner, voice_view
from policy.blocklist.repository import transfer_exceptions
from policy.blocklist.review import hold_for_review
from policy.blocklist.screening import reference_check
from policy.consent.challenges import OwnerIdentity, create_challenge
from policy.consent.enrollment import Recording, add_reference_samples, enroll_consumed_challenge
from policy.consent.storage import load_samples
from policy.errors import (
    ConsentRequestInvalid,
    IdentityAssuranceRequired,
    NotVoiceOwner,
    SpeakerReviewRequired,
    VoiceNotFound,
)

router = APIRouter(prefix="/v1", tags=["consent"])
IDENTIFIER = r"^[A-Za-z0-9._:@|+=~#-]{1,200}$"
WORD = r"^[a-z][a-z0-9_]{0,31}$"
VOICE_ID = r"^[0-9a-f]{32}$"  # voice and consent ids are 16 random bytes in hex
LANGUAGE = r"^[a-z]{2,3}(-[A-Za-z]{2,4})?$"


def require_assurance(request: Request, principal: Principal) -> None:
    if request.app.state.settings.require_owner_identity_assurance and not principal.identity_verified:
        raise IdentityAssuranceRequired("this deployment requires an identity-verified token to consent or opt out")


def owner_identity(principal: Principal) -> OwnerIdentity:
    if not principal.display_name:
        raise ConsentRequestInvalid("the token carries no display name: the statement names the owner")
    return OwnerIdentity(iss=principal.issuer, sub=principal.subject, display_name=principal.display_name)


class ChallengeBody(BaseModel):
    grantee_kind: str = Field(pattern=r"^(tenant|subject)$")
    grantee_id: str = Field(pattern=IDENTIFIER)
    grantee_name: str = Field(min_length=1, max_length=100)
    purposes: list[Annotated[str, Field(pattern=WORD)]] = Field(min_length=1, max_length=10)
    languages: list[Annotated[str, Field(pattern=LANGUAGE)]] = Field(min_length=1, max_length=10)
    not_before: datetime | None = None
    not_after: datetime
    max_uses: int = Field(ge=1, le=1_000_000_000)


@router.post("/consent/challenges", status_code=201)
def issue_challenge(body: ChallengeBody, request: Request, session: SessionDep, principal: Owner) -> dict:
    """A single-use statement with a random phrase, to be read aloud within ten minutes."""
    require_assurance(request, principal)
    now = utcnow()
    challenge, statement = create_challenge(
        session,
        owner=owner_identity(principal),
        grantee_kind=body.grantee_kind,
        grantee_id=body.grantee_id,
        grantee_name=body.grantee_name,
        purposes=body.purposes,
        languages=body.languages,
        not_before=body.not_before or now,
        not_after=body.not_after,
        max_uses=body.max_uses,
        now=now,
    )
    append_event(
        session,
        event=AuditEvent(action=Action.CONSENT_CHALLENGE_ISSUED, decision=Decision.NONE, actor=actor_of(principal)),
    )
    return {
        "challenge_id": challenge.id,
        "statement": statement.text,
        "phrase": list(statement.phrase),
        "expires_at": challenge.expires_at.isoformat(),
    }


def _protected_check(request: Request, *, voice_id: str):
    components = request.app.state.components
    return reference_check(snapshot=components.blocklist.snapshot, embedder=components.embedder, voice_id=voice_id)


def _hold_enrollment(request: Request, *, held: SpeakerReviewRequired, principal: Principal, challenge_id: str) -> None:
    """Queue an enrollment whose references came close to a protected speaker (committed even
    though the request fails: the hold is its outcome)."""
    with request.app.state.session_factory() as session:
        item = hold_for_review(
            session,
            held=held,
            voice_id=f"challenge:{challenge_id}",
            request_ref=challenge_id,
            requester_iss=principal.issuer,
            requester_sub=principal.subject,
            tenant=principal.tenant,
        )
        session.commit()
    held.args = (f"{held.args[0]} (review item {item.id})",)


@router.post("/voices", status_code=201)
async def enroll(
    request: Request,
    principal: Owner,
    challenge_id: Annotated[str, Form(pattern=r"^[0-9a-f]{32}$")],
    consent_recording: Annotated[UploadFile, File()],
    references: Annotated[list[UploadFile], File(min_length=1)],
) -> dict:
    """Enroll a voice: consent recording + references, checks a-f, engine profile, audit."""
    sessions = request.app.state.session_factory
    digests: tuple[str, ...] = ()
    try:
        require_assurance(request, principal)
        check_reference_count(references)
        consent_audio = await read_upload(consent_recording, max_seconds=CONSENT_MAX_SECONDS)
        decoded = [await read_upload(upload, max_seconds=REFERENCE_MAX_SECONDS) for upload in references]
        digests = (consent_audio.sha256, *reference_digests(decoded))[:16]
        return await anyio.to_thread.run_sync(
            lambda: _enroll_checked(
                request,
                principal=principal,
                challenge_id=challenge_id,
                consent=as_recording(consent_audio),
                references=[as_recording(item) for item in decoded],
                digests=digests,
            )
        )
    except Exception as exc:
        if isinstance(exc, SpeakerReviewRequired):
            _hold_enrollment(request, held=exc, principal=principal, challenge_id=challenge_id)
        # The matched entry goes into the audit record only; the requester's detail names no one.
        entry = getattr(exc, "entry_id", None)
        record_refusal(
            sessions,
            event=denial_event(
                principal=principal,
                action=Action.CONSENT_DENIED,
                reason=reason_code(exc),
                references=digests,
                protected_entry_id=str(entry) if isinstance(entry, int) else None,
            ),
        )
        raise


def _enroll_checked(
    request: Request,
    *,
    principal: Principal,
    challenge_id: str,
    consent: Recording,
    references: list[Recording],
    digests: tuple[str, ...],
) -> dict:
    components = request.app.state.components
    sessions = request.app.state.session_factory
    require_ready_checks(request)
    now = utcnow()
    challenge = consume_committed(sessions, challenge_id=challenge_id, principal=principal, templates=None, now=now)
    provisional = f"challenge:{challenge.id}"
    with sessions() as session:
        try:
            challenge = session.merge(challenge, load=True)
            result = enroll_consumed_challenge(
                session,
                challenge=challenge,
                consent_recording=consent,
                references=references,
                embedder=components.embedder,
                recognizer=recognizer(),
                detect_watermark=watermark_detector(components.watermark),
                check_protected=_protected_check(request, voice_id=provisional),
                key_encryption_key=components.voices.key_encryption_key,
                now=now,
            )
            profile = prepare_engine_profile(request, references=references)
            components.voices.save_engine_profile(session, voice_id=result.voice_id, profile=profile)
            moved = transfer_exceptions(
                session,
                from_voice_id=provisional,
                to_voice_id=result.voice_id,
                actor=f"{principal.issuer}|{principal.subject}",
            )
            actor = actor_of(principal)
            subjects = Subjects(voice_id=result.voice_id, consent_id=result.consent_id)
            append_event(
                session,
                event=AuditEvent(
                    action=Action.CONSENT_GRANTED,
                    decision=Decision.ALLOW,
                    actor=actor,
                    subjects=subjects,
                    digests=Digests(reference_sha256=digests),
                ),
            )
            append_event(
                session,
                event=AuditEvent(
                    action=Action.VOICE_ENROLLED,
                    decision=Decision.ALLOW,
                    actor=actor,
                    subjects=subjects,
                    digests=Digests(reference_sha256=digests),
                ),
            )
            session.commit()
        except BaseException:
            session.rollback()
            raise
        if moved:
            components.blocklist.refresh(force=True)
        voice = voice_view(session, voice_id=result.voice_id)
    return {
        **voice,
        "consent_id": result.consent_id,
        "speaker_similarity": round(result.speaker_similarity, 3),
        "statement_score": round(result.statement.score, 3),
    }


@router.post("/voices/{voice_id}/samples")
async def add_samples(
    voice_id: Annotated[str, Path(pattern=VOICE_ID)],
    request: Request,
    principal: Owner,
    references: Annotated[list[UploadFile], File(min_length=1)],
) -> dict:
    """More references for an enrolled voice: quality, same speaker as the consent recording,
    not protected; the speaker and engine profiles are recomputed from all references."""
    sessions = request.app.state.session_factory
    digests: tuple[str, ...] = ()
    try:
        check_reference_count(references)
        decoded = [await read_upload(upload, max_seconds=REFERENCE_MAX_SECONDS) for upload in references]
        digests = reference_digests(decoded)
        return await anyio.to_thread.run_sync(
            lambda: _add_checked(
                request,
                principal=principal,
                voice_id=voice_id,
                references=[as_recording(d) for d in decoded],
                digests=digests,
            )
        )
    except Exception as exc:
        # A voice of someone else is reported as absent, and not named in the log as touched.
        known = not isinstance(exc, (NotVoiceOwner, VoiceNotFound))
        record_refusal(
            sessions,
            event=denial_event(
                principal=principal,
                action=Action.CONSENT_DENIED,
                reason=reason_code(exc),
                voice_id=voice_id if known else None,
                references=digests,
            ),
        )
        if isinstance(exc, NotVoiceOwner):
            raise VoiceNotFound(f"no voice {voice_id}") from exc
        raise


def _add_checked(
    request: Request, *, principal: Principal, voice_id: str, references: list[Recording], digests: tuple[str, ...]
) -> dict:
    components = request.app.state.components
    kek = components.voices.key_encryption_key
    with request.app.state.session_factory() as session:
        try:
            add_reference_samples(
                session,
                voice_id=voice_id,
                owner_iss=principal.issuer,
                owner_sub=principal.subject,
                references=references,
                embedder=components.embedder,
                check_protected=_protected_check(request, voice_id=voice_id),
                key_encryption_key=kek,
            )
            stored = [
                Recording(audio=audio, sample_rate=rate)
                for audio, rate in load_samples(session, voice_id=voice_id, kind="reference", key_encryption_key=kek)
            ]
            profile = prepare_engine_profile(request, references=stored)
            components.voices.save_engine_profile(session, voice_id=voice_id, profile=profile)
            append_event(
                session,
                event=AuditEvent(
                    action=Action.VOICE_ENROLLED,
                    decision=Decision.ALLOW,
                    actor=actor_of(principal),
                    reason="samples_added",
                    subjects=Subjects(voice_id=voice_id),
                    digests=Digests(reference_sha256=digests),
                ),
            )
            session.commit()
        except BaseException:
            session.rollback()
            raise
        return voice_view(session, voice_id=voice_id)
