"""Request bodies and answers of the protected-speaker list routes."""

from __future__ import annotations

from pydantic import Field

from gateway.shared.schemas import RequestBody, ResponseModel, Timestamp
from policy.blocklist.models import EntryKind, ReviewStatus, ScreeningStage

VOICE_KEY = r"^[0-9a-f]{32}$"


class DeactivateBody(RequestBody):
    reason: str = Field(min_length=1, max_length=4000)


class DecisionBody(RequestBody):
    note: str = Field(min_length=1, max_length=4000)


class RevokeExceptionBody(RequestBody):
    voice_id: str = Field(pattern=r"^([0-9a-f]{32}|challenge:[0-9a-f]{32})$")


# --- what the routes answer (gateway/blocklist/views.py) ------------------------------------------


class EntryView(ResponseModel):
    entry_id: int
    kind: EntryKind
    name: str
    reason: str
    source: str
    active: bool
    created_by: str
    created_at: Timestamp
    deactivated_by: str | None
    deactivated_at: Timestamp | None
    deactivation_reason: str | None


class SampleView(ResponseModel):
    audio_sha256: str
    seconds: float
    embedder: str
    added_by: str
    added_at: Timestamp


class ExceptionView(ResponseModel):
    voice_id: str = Field(description="a voice id, or `challenge:<id>` for a consent given before enrollment")
    consent_grant_id: str
    note: str
    granted_by: str
    granted_at: Timestamp
    revoked_at: Timestamp | None


class EntryDetails(EntryView):
    samples: list[SampleView]
    exceptions: list[ExceptionView]


class EntryList(ResponseModel):
    entries: list[EntryView]


class ReviewView(ResponseModel):
    review_id: int
    status: ReviewStatus
    stage: ScreeningStage
    entry_id: int
    voice_id: str
    request_ref: str
    requester_sub: str
    tenant: str | None
    normalized_score: float
    created_at: Timestamp
    decided_by: str | None
    decided_at: Timestamp | None
    decision_note: str | None


class ReviewList(ResponseModel):
    reviews: list[ReviewView]


class ReviewReference(ResponseModel):
    index: int
    seconds: float


class ReviewReferences(ResponseModel):
    """The held voice's sealed references (none for a hold at enrollment: nothing was stored)."""

    review_id: int
    references: list[ReviewReference]


class ReviewProgress(ResponseModel):
    """What the requester of a held request may know of it."""

    review_id: int
    status: ReviewStatus


class GrantedException(ResponseModel):
    entry_id: int
    voice_id: str
    consent_grant_id: str
    consent_score: float
    granted_at: Timestamp


class RevokedException(ResponseModel):
    entry_id: int
    voice_id: str
    revoked_at: Timestamp
