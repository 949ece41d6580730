"""What the operations routes show: the caller's identity and the effective settings."""

from __future__ import annotations

from typing import Any

from gateway.auth import Principal
from gateway.settings import Settings

HIDDEN_SETTINGS = frozenset({"jwt_secret", "database_url"})


def identity(principal: Principal) -> dict[str, Any]:
    return {
        "issuer": principal.issuer,
        "subject": principal.subject,
        "roles": sorted(principal.roles),
        "tenant": principal.tenant,
        "display_name": principal.display_name,
        "identity_verified": principal.identity_verified,
    }


def effective_settings(settings: Settings, *, backend: str) -> dict[str, Any]:
    """Every setting but secrets, the database URL (it may hold a password) and key file paths."""
    shown = {
        name: value
        for name, value in settings.model_dump(mode="json").items()
        if name not in HIDDEN_SETTINGS and not name.endswith("_key_file")
    }
    shown["database_backend"] = backend
    return shown
