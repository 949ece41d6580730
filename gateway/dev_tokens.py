"""Dev tokens for trying the gateway locally; refused outside dev mode."""

from __future__ import annotations

import time

import jwt

from gateway.auth import Role
from gateway.settings import Settings, SettingsError


def mint_dev_token(
    settings: Settings,
    *,
    subject: str,
    roles: list[Role],
    tenant: str | None = None,
    display_name: str | None = None,
    identity_verified: bool = False,
    ttl_seconds: int = 3600,
) -> str:
    if not settings.is_dev:
        raise SettingsError("dev tokens are refused in prod mode: tokens come from the identity provider")
    if "HS256" not in settings.jwt_algorithms:
        raise SettingsError("dev tokens are HS256; CLONEGATE_JWT_ALGORITHMS does not accept HS256")
    now = int(time.time())
    claims: dict = {
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "sub": subject,
        "iat": now,
        "nbf": now,
        "exp": now + ttl_seconds,
        settings.jwt_role_claim: [role.value for role in roles],
    }
    if tenant is not None:
        claims[settings.jwt_tenant_claim] = tenant
    if display_name is not None:
        claims[settings.jwt_name_claim] = display_name
    if identity_verified:
        claims[settings.identity_assurance_claim] = True
    return jwt.encode(claims, settings.jwt_secret.get_secret_value(), algorithm="HS256")
