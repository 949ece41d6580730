"""Consent challenges, enrolling a voice, more reference samples (role `owner`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Path, UploadFile

from gateway.dependencies import Enroller, EnrollmentDep, SessionDep
from gateway.enrollment.schemas import HEX_ID, ChallengeBody, challenge_dict

router = APIRouter(prefix="/v1", tags=["consent"])


@router.post("/consent/challenges", status_code=201)
def issue_challenge(
    body: ChallengeBody, session: SessionDep, principal: Enroller, service: EnrollmentDep
) -> dict[str, Any]:
    """A single-use statement with a random phrase, to be read aloud within ten minutes."""
    return challenge_dict(service.issue_challenge(session, principal=principal, terms=body.terms()))


@router.post("/voices", status_code=201)
def enroll(
    principal: Enroller,
    service: EnrollmentDep,
    challenge_id: Annotated[str, Form(pattern=HEX_ID)],
    consent_recording: Annotated[UploadFile, File()],
    references: Annotated[list[UploadFile], File(min_length=1)],
) -> dict[str, Any]:
    """Enroll a voice: consent recording + references, checks a-f, engine profile, audit."""
    return service.enroll(
        principal=principal,
        challenge_id=challenge_id,
        consent_recording=consent_recording.file.read(),
        references=[upload.file.read() for upload in references],
    )


@router.post("/voices/{voice_id}/samples")
def add_samples(
    voice_id: Annotated[str, Path(pattern=HEX_ID)],
    principal: Enroller,
    service: EnrollmentDep,
    references: Annotated[list[UploadFile], File(min_length=1)],
) -> dict[str, Any]:
    """More references for an enrolled voice: quality, same speaker as the consent recording,
    not protected; the speaker and engine profiles are recomputed from all references."""
    return service.add_samples(
        principal=principal, voice_id=voice_id, references=[upload.file.read() for upload in references]
    )
