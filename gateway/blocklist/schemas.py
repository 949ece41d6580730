"""Request bodies of the protected-speaker list routes."""

from __future__ import annotations

from pydantic import BaseModel, Field

VOICE_KEY = r"^[0-9a-f]{32}$"


class DeactivateBody(BaseModel):
    reason: str = Field(min_length=1, max_length=4000)


class DecisionBody(BaseModel):
    note: str = Field(min_length=1, max_length=4000)


class RevokeExceptionBody(BaseModel):
    voice_id: str = Field(pattern=r"^([0-9a-f]{32}|challenge:[0-9a-f]{32})$")
