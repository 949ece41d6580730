"""The protected-speaker list over HTTP: admin entries, exceptions and reviews; owner opt-out.

Every change commits together with its audit event, then this process reloads its index at
once (other processes see the version row move within their poll interval).
"""

from __future__ import annotations

from typing import Annotated

import anyio
from fastapi import APIRouter, File, Form, Request, UploadFile
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from audit.events import Action, AuditEvent, Decision, Subjects
from audit.store import append_event
from gateway.audit_hooks import record_refusal
from gateway.auth import Authenticated, Permission, Principal, require
from gateway.db import SessionDep
from gateway.enrollment import (
    OPT_OUT_GRANTEE,
    OPT_OUT_PURPOSE,
    OPT_OUT_TEMPLATES,
    REFERENCE_MAX_SECONDS,
    SpokenChallengeCheck,
    consume_committed,
    denial_event,
    read_upload,
    reason_code,
    utcnow,
)
from gateway.pipeline.steps import actor_of
from gateway.routes.blocklist_exceptions import router as exceptions_router
from gateway.routes.consent import owner_identity, require_assurance
from policy.blocklist.models import ProtectedSpeaker, ReviewItem
from policy.blocklist.repository import (
    MAX_SAMPLES_PER_REQUEST,
    AudioSample,
    add_protected_speaker,
    deactivate_protected_speaker,
    inspect_protected_speaker,
    list_protected_speakers,
    opt_out_own_voice,
)
from policy.blocklist.review import decide_review, get_review_item, pending_reviews, review_status_for_requester
from policy.consent.challenges import CHALLENGE_TTL, create_challenge
from policy.errors import ProtectedSpeakerInvalid

router = APIRouter(prefix="/v1/blocklist", tags=["blocklist"])
router.include_router(exceptions_router)
ListAdmin = Annotated[Principal, require(Permission.MANAGE_BLOCKLIST)]
Reviewer = Annotated[Principal, require(Permission.DECIDE_REVIEWS)]
Owner = Annotated[Principal, require(Permission.MANAGE_OWN_VOICES)]


def admin_actor(principal: Principal) -> str:
    return f"{principal.issuer}|{principal.subject}"


def entry_dict(entry: ProtectedSpeaker) -> dict:
    return {
        "entry_id": entry.id,
        "kind": entry.kind.value,
        "name": entry.name,
        "reason": entry.reason,
        "source": entry.source,
        "active": entry.active,
        "created_by": entry.created_by,
        "created_at": entry.created_at.isoformat(),
        "deactivated_by": entry.deactivated_by,
        "deactivated_at": entry.deactivated_at.isoformat() if entry.deactivated_at else None,
        "deactivation_reason": entry.deactivation_reason,
    }


def review_dict(item: ReviewItem) -> dict:
    return {
        "review_id": item.id,
        "status": item.status.value,
        "stage": item.stage.value,
        "entry_id": item.entry_id,
        "voice_id": item.voice_id,
        "request_ref": item.request_ref,
        "requester_sub": item.requester_sub,
        "tenant": item.tenant,
        "normalized_score": item.normalized_score,
        "created_at": item.created_at.isoformat(),
        "decided_by": item.decided_by,
        "decided_at": item.decided_at.isoformat() if item.decided_at else None,
        "decision_note": item.decision_note,
    }


def refresh_index(request: Request) -> None:
    request.app.state.components.blocklist.refresh(force=True)


def _entry_event(principal: Principal, *, action: Action, entry_id: int, reason: str | None = None) -> AuditEvent:
    return AuditEvent(
        action=action,
        decision=Decision.NONE,
        actor=actor_of(principal),
        reason=reason,
        subjects=Subjects(protected_entry_id=str(entry_id)),
    )


@router.post("/entries", status_code=201)
async def add_entry(
    request: Request,
    principal: ListAdmin,
    name: Annotated[str, Form(min_length=1, max_length=200)],
    reason: Annotated[str, Form(min_length=1, max_length=4000)],
    source: Annotated[str, Form(min_length=1, max_length=500)],
    samples: Annotated[list[UploadFile], File(min_length=1)],
) -> dict:
    """List a speaker from recordings; only their embeddings and hashes are kept."""
    if len(samples) > MAX_SAMPLES_PER_REQUEST:
        raise ProtectedSpeakerInvalid(f"at most {MAX_SAMPLES_PER_REQUEST} samples per request")
    decoded = [await read_upload(upload, max_seconds=REFERENCE_MAX_SECONDS) for upload in samples]
    audio = [AudioSample(audio=d.samples, sample_rate=d.sample_rate) for d in decoded]

    def store() -> dict:
        with request.app.state.session_factory() as session:
            entry = add_protected_speaker(
                session,
                embedder=request.app.state.components.embedder,
                name=name,
                reason=reason,
                source=source,
                samples=audio,
                actor=admin_actor(principal),
            )
            append_event(
                session,
                event=_entry_event(
                    principal, action=Action.PROTECTED_SPEAKER_ADDED, entry_id=entry.id, reason="listed"
                ),
            )
            session.commit()
            view = entry_dict(entry)
        refresh_index(request)
        return view

    return await anyio.to_thread.run_sync(store)


@router.get("/entries")
def list_entries(session: SessionDep, _: ListAdmin, include_inactive: bool = False) -> dict:
    return {"entries": [entry_dict(e) for e in list_protected_speakers(session, include_inactive=include_inactive)]}


@router.get("/entries/{entry_id}")
def inspect_entry(entry_id: int, session: SessionDep, _: ListAdmin) -> dict:
    details = inspect_protected_speaker(session, entry_id=entry_id)
    return {
        **entry_dict(details.entry),
        "samples": [
            {
                "audio_sha256": s.audio_sha256,
                "seconds": round(s.seconds, 2),
                "embedder": s.embedder_name,
                "added_by": s.added_by,
                "added_at": s.added_at.isoformat(),
            }
            for s in details.samples
        ],
        "exceptions": [
            {
                "voice_id": e.voice_id,
                "consent_grant_id": e.consent_grant_id,
                "note": e.note,
                "granted_by": e.granted_by,
                "granted_at": e.granted_at.isoformat(),
                "revoked_at": e.revoked_at.isoformat() if e.revoked_at else None,
            }
            for e in details.exceptions
        ],
    }


class DeactivateBody(BaseModel):
    reason: str = Field(min_length=1, max_length=4000)


@router.post("/entries/{entry_id}/deactivate")
def deactivate_entry(entry_id: int, body: DeactivateBody, request: Request, principal: ListAdmin) -> dict:
    with request.app.state.session_factory() as session:
        entry = deactivate_protected_speaker(
            session, entry_id=entry_id, actor=admin_actor(principal), reason=body.reason
        )
        append_event(
            session,
            event=_entry_event(
                principal, action=Action.PROTECTED_SPEAKER_REMOVED, entry_id=entry_id, reason="deactivated"
            ),
        )
        session.commit()
        view = entry_dict(entry)
    refresh_index(request)
    return view


# --- review queue ---------------------------------------------------------------------------


@router.get("/reviews")
def list_reviews(session: SessionDep, _: Reviewer) -> dict:
    return {"reviews": [review_dict(item) for item in pending_reviews(session)]}


@router.get("/reviews/{review_id}")
def get_review(review_id: int, session: SessionDep, _: Reviewer) -> dict:
    return review_dict(get_review_item(session, item_id=review_id))


class DecisionBody(BaseModel):
    note: str = Field(min_length=1, max_length=4000)


def _decide(request: Request, *, principal: Principal, review_id: int, approve: bool, note: str) -> dict:
    with request.app.state.session_factory() as session:
        item = decide_review(session, item_id=review_id, approve=approve, actor=admin_actor(principal), note=note)
        append_event(
            session,
            event=AuditEvent(
                action=Action.REVIEW_APPROVED if approve else Action.REVIEW_DENIED,
                decision=Decision.ALLOW if approve else Decision.DENY,
                actor=actor_of(principal),
                reason="review_approved" if approve else "review_denied",
                subjects=Subjects(protected_entry_id=str(item.entry_id), voice_id=_identifier(item.voice_id)),
            ),
        )
        session.commit()
        view = review_dict(item)
    refresh_index(request)
    return view


def _identifier(value: str) -> str | None:
    # Voice keys are hex ids or "challenge:<hex>"; anything else stays out of the log.
    return value if value and len(value) <= 200 and all(c.isalnum() or c in "._:-" for c in value) else None


@router.post("/reviews/{review_id}/approve")
def approve_review(review_id: int, body: DecisionBody, request: Request, principal: Reviewer) -> dict:
    return _decide(request, principal=principal, review_id=review_id, approve=True, note=body.note)


@router.post("/reviews/{review_id}/deny")
def deny_review(review_id: int, body: DecisionBody, request: Request, principal: Reviewer) -> dict:
    return _decide(request, principal=principal, review_id=review_id, approve=False, note=body.note)


@router.get("/my-reviews/{review_id}")
def my_review_status(review_id: int, session: SessionDep, principal: Authenticated) -> dict:
    """The requester of a held request sees its status (another's item answers 404)."""
    status = review_status_for_requester(
        session, item_id=review_id, requester_iss=principal.issuer, requester_sub=principal.subject
    )
    return {"review_id": review_id, "status": status.value}


# --- owner opt-out ----------------------------------------------------------------------------


@router.post("/opt-out/challenges", status_code=201)
def opt_out_challenge(request: Request, session: SessionDep, principal: Owner) -> dict:
    """A statement refusing cloning, with a random phrase, to be read aloud within ten minutes."""
    require_assurance(request, principal)
    now = utcnow()
    challenge, statement = create_challenge(
        session,
        owner=owner_identity(principal),
        grantee_kind="subject",
        grantee_id=principal.subject,
        grantee_name=OPT_OUT_GRANTEE,
        purposes=[OPT_OUT_PURPOSE],
        languages=["en"],
        not_before=now,
        not_after=now + CHALLENGE_TTL,
        max_uses=1,
        now=now,
        templates=OPT_OUT_TEMPLATES,
    )
    append_event(
        session,
        event=AuditEvent(
            action=Action.CONSENT_CHALLENGE_ISSUED, decision=Decision.NONE, actor=actor_of(principal), reason="opt_out"
        ),
    )
    return {
        "challenge_id": challenge.id,
        "statement": statement.text,
        "phrase": list(statement.phrase),
        "expires_at": challenge.expires_at.isoformat(),
    }


@router.post("/opt-out", status_code=201)
async def opt_out(
    request: Request,
    principal: Owner,
    challenge_id: Annotated[str, Form(pattern=r"^[0-9a-f]{32}$")],
    recording: Annotated[UploadFile, File()],
) -> dict:
    """Put the caller's own voice on the list: the recording must read the opt-out challenge."""
    sessions = request.app.state.session_factory
    digests: tuple[str, ...] = ()
    try:
        require_assurance(request, principal)
        decoded = await read_upload(recording, max_seconds=REFERENCE_MAX_SECONDS)
        digests = (decoded.sha256,)
        return await anyio.to_thread.run_sync(
            lambda: _opt_out_checked(
                request,
                principal=principal,
                challenge_id=challenge_id,
                audio=decoded.samples,
                sample_rate=decoded.sample_rate,
            )
        )
    except Exception as exc:
        record_refusal(
            sessions,
            event=denial_event(
                principal=principal, action=Action.CONSENT_DENIED, reason=reason_code(exc), references=digests
            ),
        )
        raise


def _opt_out_checked(request: Request, *, principal: Principal, challenge_id: str, audio, sample_rate: int) -> dict:
    components = request.app.state.components
    sessions = request.app.state.session_factory
    challenge = consume_committed(
        sessions, challenge_id=challenge_id, principal=principal, templates=OPT_OUT_TEMPLATES, now=utcnow()
    )
    verifier = SpokenChallengeCheck(challenge=challenge, templates=OPT_OUT_TEMPLATES, watermark=components.watermark)
    with sessions() as session:
        entry = _store_opt_out(
            session, request=request, principal=principal, verifier=verifier, audio=audio, sample_rate=sample_rate
        )
        session.commit()
        view = entry_dict(entry)
    refresh_index(request)
    return view


def _store_opt_out(
    session: Session, *, request: Request, principal: Principal, verifier, audio, sample_rate: int
) -> ProtectedSpeaker:
    entry = opt_out_own_voice(
        session,
        embedder=request.app.state.components.embedder,
        verifier=verifier,
        owner_iss=principal.issuer,
        owner_sub=principal.subject,
        display_name=principal.display_name or principal.subject,
        audio=audio,
        sample_rate=sample_rate,
    )
    append_event(
        session,
        event=_entry_event(principal, action=Action.PROTECTED_SPEAKER_ADDED, entry_id=entry.id, reason="opt_out"),
    )
    return entry
