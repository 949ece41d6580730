"""The protected-speaker list over HTTP: admin entries, exceptions and reviews; owner opt-out."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Path, UploadFile
from fastapi.responses import Response

from gateway.audio_io import DECODE_ERRORS
from gateway.auth import Authenticated
from gateway.blocklist.schemas import (
    VOICE_KEY,
    DeactivateBody,
    DecisionBody,
    EntryDetails,
    EntryList,
    EntryView,
    GrantedException,
    ReviewList,
    ReviewProgress,
    ReviewReferences,
    ReviewView,
    RevokedException,
    RevokeExceptionBody,
)
from gateway.dependencies import BlocklistDep, BlocklistExceptionsDep, ListAdmin, Owner, Reviewer, SessionDep
from gateway.enrollment.schemas import SPOKEN_CHALLENGE_ERRORS, IssuedChallengeView
from gateway.errors import NotFound, error_responses
from gateway.shared.schemas import RowId
from policy import errors as policy
from policy.blocklist.repository import MAX_SAMPLES_PER_REQUEST

router = APIRouter(prefix="/v1/blocklist", tags=["blocklist"])

# What listing a speaker from recordings can refuse: the recordings, or a list that cannot work.
LISTING_ERRORS = (*DECODE_ERRORS, policy.AudioUnusable, policy.ProtectedSpeakerInvalid, policy.SpeakerModelError)
LIST_UNUSABLE = (policy.BlocklistMisconfigured, policy.EmbeddingInvalid)


@router.post(
    "/entries", status_code=201, response_model=EntryView, responses=error_responses(*LISTING_ERRORS, *LIST_UNUSABLE)
)
def add_entry(
    principal: ListAdmin,
    service: BlocklistDep,
    name: Annotated[str, Form(min_length=1, max_length=200)],
    reason: Annotated[str, Form(min_length=1, max_length=4000)],
    source: Annotated[str, Form(min_length=1, max_length=500)],
    samples: Annotated[list[UploadFile], File(min_length=1, max_length=MAX_SAMPLES_PER_REQUEST)],
) -> dict[str, Any]:
    """List a speaker from recordings; only their embeddings and hashes are kept."""
    recordings = [upload.file.read() for upload in samples]
    return service.add_entry(principal=principal, name=name, reason=reason, source=source, samples=recordings)


@router.get("/entries", response_model=EntryList)
def list_entries(
    session: SessionDep, _: ListAdmin, service: BlocklistDep, include_inactive: bool = False
) -> dict[str, Any]:
    return {"entries": service.list_entries(session, include_inactive=include_inactive)}


@router.get(
    "/entries/{entry_id}", response_model=EntryDetails, responses=error_responses(policy.ProtectedSpeakerNotFound)
)
def inspect_entry(entry_id: RowId, session: SessionDep, _: ListAdmin, service: BlocklistDep) -> dict[str, Any]:
    """The entry with its samples (hash, length) and exceptions."""
    return service.inspect_entry(session, entry_id=entry_id)


@router.post(
    "/entries/{entry_id}/deactivate",
    response_model=EntryView,
    responses=error_responses(policy.ProtectedSpeakerNotFound, policy.ProtectedSpeakerInactive, *LIST_UNUSABLE),
)
def deactivate_entry(
    entry_id: RowId, body: DeactivateBody, principal: ListAdmin, service: BlocklistDep
) -> dict[str, Any]:
    return service.deactivate_entry(principal=principal, entry_id=entry_id, reason=body.reason)


@router.post(
    "/entries/{entry_id}/exceptions",
    status_code=201,
    response_model=GrantedException,
    responses=error_responses(
        policy.ProtectedSpeakerNotFound,
        policy.ProtectedSpeakerInactive,
        policy.BlocklistExceptionRefused,
        policy.VoiceNotFound,
        policy.VoiceErased,
        policy.VoiceKeyDestroyed,
        policy.VoiceKeyUnwrapFailed,
        policy.ConsentSpeakerMismatch,
        policy.AudioUnusable,
        policy.SpeakerModelError,
        policy.ConsentWordsNotRevealed,
        *DECODE_ERRORS,
        *SPOKEN_CHALLENGE_ERRORS,
        *LIST_UNUSABLE,
    ),
)
def grant_exception(
    entry_id: RowId,
    principal: ListAdmin,
    service: BlocklistExceptionsDep,
    note: Annotated[str, Form(min_length=1, max_length=4000)],
    voice_id: Annotated[str | None, Form(pattern=VOICE_KEY)] = None,
    challenge_id: Annotated[str | None, Form(pattern=VOICE_KEY)] = None,
    consent_recording: Annotated[UploadFile | None, File()] = None,
) -> dict[str, Any]:
    """Let one voice past one entry, on the protected person's own consent (gateway/blocklist/exceptions.py)."""
    return service.grant(
        principal=principal,
        entry_id=entry_id,
        note=note,
        voice_id=voice_id,
        challenge_id=challenge_id,
        consent_recording=consent_recording.file.read() if consent_recording else None,
    )


@router.post(
    "/entries/{entry_id}/exceptions/revoke",
    response_model=RevokedException,
    responses=error_responses(policy.ProtectedSpeakerNotFound, policy.BlocklistExceptionRefused, *LIST_UNUSABLE),
)
def revoke_exception(
    entry_id: RowId, body: RevokeExceptionBody, principal: ListAdmin, service: BlocklistExceptionsDep
) -> dict[str, Any]:
    return service.revoke(principal=principal, entry_id=entry_id, voice_id=body.voice_id)


@router.get("/reviews", response_model=ReviewList)
def list_reviews(session: SessionDep, _: Reviewer, service: BlocklistDep) -> dict[str, Any]:
    return {"reviews": service.list_reviews(session)}


@router.get("/reviews/{review_id}", response_model=ReviewView, responses=error_responses(policy.ReviewItemNotFound))
def get_review(review_id: RowId, session: SessionDep, _: Reviewer, service: BlocklistDep) -> dict[str, Any]:
    return service.get_review(session, review_id=review_id)


# Listening to a held voice: the item, and the voice's sealed store (its key may be gone).
LISTENING_ERRORS = (policy.ReviewItemNotFound, policy.VoiceKeyDestroyed, policy.VoiceKeyUnwrapFailed)


@router.get(
    "/reviews/{review_id}/references", response_model=ReviewReferences, responses=error_responses(*LISTENING_ERRORS)
)
def review_references(review_id: RowId, session: SessionDep, _: Reviewer, service: BlocklistDep) -> dict[str, Any]:
    """The held voice's own sealed reference recordings, to listen to before deciding."""
    return service.review_references(session, review_id=review_id)


@router.get(
    "/reviews/{review_id}/references/{index}",
    response_class=Response,
    responses={
        200: {"content": {"audio/wav": {}}, "description": "the owner's reference recording (never engine output)"},
        **error_responses(*LISTENING_ERRORS, NotFound),
    },
)
def play_review_reference(
    review_id: RowId, index: Annotated[int, Path(ge=0, le=1000)], principal: Reviewer, service: BlocklistDep
) -> Response:
    """One reference of the held voice; the playing is recorded in the audit log first."""
    audio = service.play_review_reference(principal=principal, review_id=review_id, index=index)
    return Response(audio, media_type="audio/wav", headers={"Cache-Control": "no-store"})


DECISION_ERRORS = error_responses(policy.ReviewItemNotFound, policy.ReviewAlreadyDecided, *LIST_UNUSABLE)


@router.post("/reviews/{review_id}/approve", response_model=ReviewView, responses=DECISION_ERRORS)
def approve_review(review_id: RowId, body: DecisionBody, principal: Reviewer, service: BlocklistDep) -> dict[str, Any]:
    return service.decide_review(principal=principal, review_id=review_id, approve=True, note=body.note)


@router.post("/reviews/{review_id}/deny", response_model=ReviewView, responses=DECISION_ERRORS)
def deny_review(review_id: RowId, body: DecisionBody, principal: Reviewer, service: BlocklistDep) -> dict[str, Any]:
    return service.decide_review(principal=principal, review_id=review_id, approve=False, note=body.note)


@router.get(
    "/my-reviews/{review_id}", response_model=ReviewProgress, responses=error_responses(policy.ReviewItemNotFound)
)
def my_review_status(
    review_id: RowId, session: SessionDep, principal: Authenticated, service: BlocklistDep
) -> dict[str, Any]:
    """The requester of a held request sees its status (another's item answers 404)."""
    return service.my_review_status(session, principal=principal, review_id=review_id)


@router.post(
    "/opt-out/challenges",
    status_code=201,
    response_model=IssuedChallengeView,
    responses=error_responses(policy.IdentityAssuranceRequired, policy.ConsentRequestInvalid),
)
def opt_out_challenge(session: SessionDep, principal: Owner, service: BlocklistDep) -> dict[str, Any]:
    """A statement refusing cloning, with a random phrase, to be read aloud within ten minutes."""
    return service.opt_out_challenge(session, principal=principal)


@router.post(
    "/opt-out",
    status_code=201,
    response_model=EntryView,
    responses=error_responses(
        policy.IdentityAssuranceRequired,
        policy.OptOutRefused,
        policy.AudioUnusable,
        policy.SpeakerModelError,
        *DECODE_ERRORS,
        *SPOKEN_CHALLENGE_ERRORS,
        *LIST_UNUSABLE,
    ),
)
def opt_out(
    principal: Owner,
    service: BlocklistDep,
    challenge_id: Annotated[str, Form(pattern=VOICE_KEY)],
    recording: Annotated[UploadFile, File()],
) -> dict[str, Any]:
    """Put the caller's own voice on the list: the recording must read the opt-out challenge."""
    return service.opt_out(principal=principal, challenge_id=challenge_id, recording=recording.file.read())
