"""The dev sign-in request."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from gateway.auth import Role

IDENTIFIER = r"^[A-Za-z0-9._:@|+=~#-]{1,200}$"


class DevSignInBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    subject: str = Field(pattern=IDENTIFIER)
    roles: list[Role] = Field(min_length=1, max_length=4)
    tenant: str | None = Field(default=None, pattern=IDENTIFIER)
    display_name: str | None = Field(default=None, min_length=1, max_length=100)
