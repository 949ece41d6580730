"""Consent challenges, enrolling a voice, more reference samples (role `owner`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Path, UploadFile

from engine import errors as engine
from gateway.audio_io import DECODE_ERRORS
from gateway.dependencies import Enroller, EnrollmentDep, Owner, SessionDep
from gateway.enrollment.schemas import (
    HEX_ID,
    SPOKEN_CHALLENGE_ERRORS,
    ChallengeBody,
    ConsentChallengeView,
    EnrolledVoice,
    RevealedChallengeView,
    challenge_dict,
    revealed_dict,
)
from gateway.errors import ChallengeWrongKind, error_responses
from gateway.shared.uploads import MAX_REFERENCES
from gateway.voices.schemas import VoiceView
from policy import errors as policy

router = APIRouter(prefix="/v1", tags=["consent"])

# What checking and storing references can refuse, on enrollment and on more samples alike.
REFERENCE_ERRORS = (
    *DECODE_ERRORS,
    policy.AudioUnusable,
    policy.ReferenceQualityError,
    policy.ConsentSpeakerMismatch,
    policy.SpeakerProtected,
    policy.SpeakerReviewRequired,
    policy.SpeakerModelError,
    policy.BlocklistMisconfigured,
    policy.EmbeddingInvalid,
    policy.VoiceKeyUnwrapFailed,
    engine.EngineError,
)
OWNER_ERRORS = (policy.IdentityAssuranceRequired, policy.ConsentRequestInvalid)
# A consent recording must come within the window after its words were revealed (docs/consent.md).
LIVENESS_ERRORS = (policy.ConsentWordsNotRevealed, policy.ConsentRecordingLate)


@router.post(
    "/consent/challenges",
    status_code=201,
    response_model=ConsentChallengeView,
    responses=error_responses(*OWNER_ERRORS, policy.StatementTemplateInvalid),
)
def issue_challenge(
    body: ChallengeBody, session: SessionDep, principal: Enroller, service: EnrollmentDep
) -> dict[str, Any]:
    """A single-use statement; its four confirmation words stay hidden until the reveal, which
    must come within ten minutes."""
    return challenge_dict(service.issue_challenge(session, principal=principal, terms=body.terms()))


@router.post(
    "/consent/challenges/{challenge_id}/reveal",
    response_model=RevealedChallengeView,
    responses=error_responses(
        policy.ChallengeNotFound, policy.ChallengeAlreadyUsed, policy.ChallengeExpired, ChallengeWrongKind
    ),
)
def reveal_challenge(
    challenge_id: Annotated[str, Path(pattern=HEX_ID)], session: SessionDep, principal: Owner, service: EnrollmentDep
) -> dict[str, Any]:
    """The full statement with its four words, when the owner starts recording: the recording
    must arrive within the recording window (CLONEGATE_CONSENT_RECORDING_WINDOW_SECONDS). Not
    counted against the enrollment rate limit: one window per challenge, repeats change nothing."""
    return revealed_dict(service.reveal_challenge(session, principal=principal, challenge_id=challenge_id))


@router.post(
    "/voices",
    status_code=201,
    response_model=EnrolledVoice,
    responses=error_responses(*OWNER_ERRORS, *SPOKEN_CHALLENGE_ERRORS, *LIVENESS_ERRORS, *REFERENCE_ERRORS),
)
def enroll(
    principal: Enroller,
    service: EnrollmentDep,
    challenge_id: Annotated[str, Form(pattern=HEX_ID)],
    consent_recording: Annotated[UploadFile, File()],
    references: Annotated[list[UploadFile], File(min_length=1, max_length=MAX_REFERENCES)],
) -> dict[str, Any]:
    """Enroll a voice: consent recording + references, checks a-f, engine profile, audit."""
    return service.enroll(
        principal=principal,
        challenge_id=challenge_id,
        consent_recording=consent_recording.file.read(),
        references=[upload.file.read() for upload in references],
    )


@router.post(
    "/voices/{voice_id}/samples",
    response_model=VoiceView,
    responses=error_responses(policy.VoiceNotFound, policy.VoiceErased, policy.VoiceKeyDestroyed, *REFERENCE_ERRORS),
)
def add_samples(
    voice_id: Annotated[str, Path(pattern=HEX_ID)],
    principal: Enroller,
    service: EnrollmentDep,
    references: Annotated[list[UploadFile], File(min_length=1, max_length=MAX_REFERENCES)],
) -> dict[str, Any]:
    """More references for an enrolled voice: quality, same speaker as the consent recording,
    not protected; the speaker and engine profiles are recomputed from all references."""
    return service.add_samples(
        principal=principal, voice_id=voice_id, references=[upload.file.read() for upload in references]
    )
