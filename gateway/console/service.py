"""What the console asks the gateway for besides the public API: its configuration and, in dev
mode only, a dev token (the same one `clonegate token` prints)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from gateway.auth import Role
from gateway.dev_tokens import mint_dev_token
from gateway.errors import PermissionDenied
from gateway.settings import Settings

DEV_TOKEN_TTL_SECONDS = 3600


def console_config(settings: Settings) -> dict[str, Any]:
    """How to sign in: a dev form, or OpenID Connect against the issuer the API trusts."""
    config: dict[str, Any] = {
        "mode": settings.mode,
        "detect_anonymous": settings.detect_allow_anonymous,
        "sign_in": "dev" if settings.is_dev else "oidc",
    }
    if not settings.is_dev:
        config["oidc"] = {
            "issuer": settings.jwt_issuer,
            "client_id": settings.console_oidc_client_id,
            "scope": settings.console_oidc_scope,
        }
    return config


def issuer_origin(settings: Settings) -> str | None:
    """The identity provider's origin, which the console's CSP lets the page fetch from (prod)."""
    if settings.is_dev:
        return None
    parts = urlsplit(settings.jwt_issuer)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme in ("http", "https") and parts.netloc else None


def dev_sign_in(
    settings: Settings, *, subject: str, roles: list[Role], tenant: str | None, display_name: str | None
) -> dict[str, Any]:
    if not settings.is_dev:
        # Same refusal as `clonegate token`: outside dev mode tokens come from the identity provider.
        raise PermissionDenied("dev sign-in is refused in prod mode: sign in with the identity provider")
    token = mint_dev_token(
        settings,
        subject=subject,
        roles=roles,
        tenant=tenant,
        display_name=display_name,
        ttl_seconds=DEV_TOKEN_TTL_SECONDS,
    )
    return {"access_token": token, "token_type": "Bearer", "expires_in": DEV_TOKEN_TTL_SECONDS}
