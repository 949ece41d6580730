"""Liveness and readiness probes, Prometheus metrics, who-am-I for token debugging, the effective settings (admin)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from gateway.dependencies import GatewayDep, SelfReader, SettingsReader
from gateway.errors import error_body
from gateway.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from gateway.operations.service import effective_settings, identity
from gateway.readiness import not_ready_detail

router = APIRouter()


@router.get("/healthz", tags=["health"])
def healthz() -> dict[str, str]:
    """The process is up and serving HTTP."""
    return {"status": "ok"}


@router.get("/readyz", tags=["health"], responses={503: {"description": "not ready"}})
def readyz(gateway: GatewayDep) -> JSONResponse:
    """Ready when the database is reachable and migrated and keys, models, the protected-speaker
    list and the engine are loaded; otherwise names what is missing and how to fix it."""
    problems = gateway.readiness.problems()
    if problems:
        return JSONResponse(error_body("not_ready", not_ready_detail(problems)), status_code=503)
    return JSONResponse({"status": "ready"})


@router.get("/metrics", include_in_schema=False)
def metrics(gateway: GatewayDep) -> Response:
    """Prometheus text format: HTTP answers, pipeline steps, engine queue, audit backlog, rate limits."""
    return Response(gateway.metrics.render(), media_type=METRICS_CONTENT_TYPE)


@router.get("/v1/me", tags=["auth"])
def me(principal: SelfReader) -> dict[str, Any]:
    """The identity and roles the gateway reads from the caller's token."""
    return identity(principal)


@router.get("/v1/admin/settings", tags=["admin"])
def admin_settings(gateway: GatewayDep, _: SettingsReader) -> dict[str, Any]:
    """The effective configuration, with every secret and key left out."""
    return effective_settings(gateway.settings, backend=gateway.db_engine.dialect.name)
