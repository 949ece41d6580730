"""What the operations routes answer."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from gateway.auth import Role
from gateway.errors import GatewayError
from gateway.shared.schemas import ResponseModel


class NotServing(GatewayError):
    """`/readyz` while a check fails: the detail names each missing thing and how to fix it."""

    code = "not_ready"
    status = 503


class Liveness(ResponseModel):
    status: Literal["ok"]


class ReadinessView(ResponseModel):
    status: Literal["ready"]


class Identity(ResponseModel):
    issuer: str
    subject: str
    roles: list[Role]
    tenant: str | None
    display_name: str | None
    identity_verified: bool


class EffectiveSettings(ResponseModel):
    """Every setting by its name (gateway/settings.py), secrets and key file paths left out."""

    model_config = ConfigDict(extra="allow")

    mode: str
    database_backend: str = Field(description="`sqlite` or `postgresql`")
