"""Liveness and readiness probes, and who-am-I for token debugging."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from gateway.auth import Permission, Principal, require
from gateway.errors import error_body

router = APIRouter()


@router.get("/healthz", tags=["health"])
def healthz() -> dict[str, str]:
    """The process is up and serving HTTP."""
    return {"status": "ok"}


@router.get("/readyz", tags=["health"], responses={503: {"description": "not ready"}})
def readyz(request: Request) -> JSONResponse:
    """Ready when the database is reachable and keys, models and engines are loaded."""
    failing = request.app.state.readiness.failing()
    if failing:
        return JSONResponse(error_body("not_ready", "not ready: " + ", ".join(failing)), status_code=503)
    return JSONResponse({"status": "ready"})


@router.get("/v1/me", tags=["auth"])
def me(principal: Annotated[Principal, require(Permission.READ_SELF)]) -> dict:
    """The identity and roles the gateway reads from the caller's token."""
    return {
        "issuer": principal.issuer,
        "subject": principal.subject,
        "roles": sorted(principal.roles),
        "tenant": principal.tenant,
        "display_name": principal.display_name,
        "identity_verified": principal.identity_verified,
    }
