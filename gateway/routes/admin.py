"""Operator routes (role `admin`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request

from gateway.auth import Permission, Principal, require

router = APIRouter(prefix="/v1/admin", tags=["admin"])


@router.get("/settings")
def effective_settings(request: Request, _: Annotated[Principal, require(Permission.READ_SETTINGS)]) -> dict:
    """The effective configuration, with every secret and key left out."""
    settings = request.app.state.settings
    hidden = {"jwt_secret", "database_url"}
    shown = {
        name: value
        for name, value in settings.model_dump(mode="json").items()
        if name not in hidden and not name.endswith("_key_file")
    }
    shown["database_backend"] = request.app.state.db_engine.dialect.name
    return shown
