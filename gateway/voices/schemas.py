"""What the voices routes answer: voices, their consents and their usage, as gateway/voices/views.py shows them."""

from __future__ import annotations

from typing import Literal

from gateway.shared.schemas import ResponseModel, Timestamp


class ConsentView(ResponseModel):
    consent_id: str
    voice_id: str
    grantee_kind: Literal["tenant", "subject"]
    grantee_id: str
    purposes: list[str]
    languages: list[str]
    not_before: Timestamp
    not_after: Timestamp
    max_uses: int
    uses: int
    created_at: Timestamp
    revoked_at: Timestamp | None


class VoiceSummary(ResponseModel):
    voice_id: str
    owner_name: str
    status: Literal["active", "erased"]
    profile_version: int
    created_at: Timestamp
    erased_at: Timestamp | None


class VoiceView(VoiceSummary):
    """A voice with its consents (a client sees only those that name it)."""

    consents: list[ConsentView]


class VoiceList(ResponseModel):
    voices: list[VoiceSummary]


class UsageRecordView(ResponseModel):
    consent_id: str | None  # None: the owner used their own voice, under no grant
    principal_sub: str
    tenant: str | None
    purpose: str
    language: str
    text_sha256: str
    audit_index: int | None
    created_at: Timestamp


class VoiceUsage(ResponseModel):
    voice_id: str
    usage: list[UsageRecordView]
