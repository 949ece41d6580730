"""Liveness and readiness probes, Prometheus metrics, who-am-I for token debugging, the effective settings (admin)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from gateway.dependencies import GatewayDep, SelfReader, SettingsReader
from gateway.errors import error_responses
from gateway.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from gateway.operations.schemas import EffectiveSettings, Identity, Liveness, NotServing, ReadinessView
from gateway.operations.service import effective_settings, identity
from gateway.readiness import not_ready_detail

router = APIRouter()


@router.get("/healthz", tags=["health"], response_model=Liveness)
def healthz() -> dict[str, str]:
    """The process is up and serving HTTP."""
    return {"status": "ok"}


@router.get("/readyz", tags=["health"], response_model=ReadinessView, responses=error_responses(NotServing))
def readyz(gateway: GatewayDep) -> dict[str, str]:
    """Ready when the database is reachable and migrated and keys, models, the protected-speaker
    list and the engine are loaded; otherwise names what is missing and how to fix it."""
    problems = gateway.readiness.problems()
    if problems:
        raise NotServing(not_ready_detail(problems))
    return {"status": "ready"}


@router.get("/metrics", include_in_schema=False, response_class=Response)
def metrics(gateway: GatewayDep) -> Response:
    """Prometheus text format: HTTP answers, pipeline steps, engine queue, audit backlog, rate limits."""
    return Response(gateway.metrics.render(), media_type=METRICS_CONTENT_TYPE)


@router.get("/v1/me", tags=["auth"], response_model=Identity)
def me(principal: SelfReader) -> dict[str, Any]:
    """The identity and roles the gateway reads from the caller's token."""
    return identity(principal)


@router.get("/v1/admin/settings", tags=["admin"], response_model=EffectiveSettings)
def admin_settings(gateway: GatewayDep, _: SettingsReader) -> dict[str, Any]:
    """The effective configuration, with every secret and key left out."""
    return effective_settings(gateway.settings, backend=gateway.db_engine.dialect.name)
