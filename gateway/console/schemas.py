"""The dev sign-in request and what the console's own routes answer."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from gateway.auth import Role
from gateway.shared.schemas import RequestBody, ResponseModel

IDENTIFIER = r"^[A-Za-z0-9._:@|+=~#-]{1,200}$"


class DevSignInBody(RequestBody):
    subject: str = Field(pattern=IDENTIFIER)
    roles: list[Annotated[Role, Field(strict=False)]] = Field(min_length=1, max_length=4)
    tenant: str | None = Field(default=None, pattern=IDENTIFIER)
    display_name: str | None = Field(default=None, min_length=1, max_length=100)


class DevToken(ResponseModel):
    access_token: str
    token_type: Literal["Bearer"]
    expires_in: int


class OidcClient(ResponseModel):
    issuer: str
    client_id: str | None
    scope: str


class ConsoleConfig(ResponseModel):
    mode: Literal["dev", "prod"]
    detect_anonymous: bool
    sign_in: Literal["dev", "oidc"]
    oidc: OidcClient | None = None
