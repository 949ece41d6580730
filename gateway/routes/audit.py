"""Audit log HTTP API (auditor or admin), its start-up wiring and the write-ahead helper.

``install_audit(app, settings)`` loads the checkpoint signing key, runs the integrity check at
start-up (a tampered log stops the gateway), starts the integrator thread for the app's
lifetime and mounts the routes. ``gateway.audit_hooks.commit_write_ahead`` is what the pipeline calls to make the
``admitted`` event durable before the engine runs.
"""

from __future__ import annotations

import base64
import json
import logging
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, FastAPI, Query, Request
from fastapi.responses import FileResponse, PlainTextResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import SQLAlchemyError

from audit.bundle import archive_bundle
from audit.checkpoint import SigningKey
from audit.errors import AuditError
from audit.events import Action, Actor, AuditEvent, Decision
from audit.export import export_bundle
from audit.integrator import IntegratorThread
from audit.integrity import check_log_integrity
from audit.store import EventFilter, append_event, latest_checkpoint, list_events, prove_consistency, prove_inclusion
from gateway.auth import Permission, Principal, Role, require
from gateway.db import SessionDep
from gateway.errors import NotFound, PermissionDenied
from gateway.keyfiles import audit_signing_key as load_audit_signing_key
from gateway.lifespan import run_during_lifespan
from gateway.settings import Settings
from gateway.startup_checks import StartupRefused

log = logging.getLogger("clonegate.audit")

router = APIRouter(prefix="/v1/audit", tags=["audit"])
public_router = APIRouter(prefix="/v1/audit", tags=["audit"])
AuditReader = Annotated[Principal, require(Permission.READ_AUDIT)]


def install_audit(app: FastAPI, settings: Settings) -> None:
    """Wire the audit log into an app whose ``state.session_factory`` is already set."""
    key = load_audit_signing_key(settings)
    sessions = app.state.session_factory
    integrator = IntegratorThread(
        sessions, key=key, origin=key.name, interval=settings.audit_checkpoint_interval_seconds
    )
    app.state.audit_key = key
    app.state.audit_integrator = integrator
    app.state.readiness.register("audit_log", lambda: integrator.healthy)

    def start() -> None:
        _startup_check(sessions, key, settings=settings)
        integrator.start()

    run_during_lifespan(app, start=start, stop=integrator.stop)
    app.include_router(public_router)
    app.include_router(router)


def _startup_check(sessions, key: SigningKey, *, settings: Settings) -> None:
    """A tampered log stops the gateway. A store that cannot be read stops it in prod; in dev it
    only leaves the gateway not ready."""
    try:
        with sessions() as session:
            report = check_log_integrity(session, verifier=key.verifier, origin=key.name)
        log.info("audit log intact", extra={"tree_size": report.tree_size, "pending": report.pending})
    except AuditError as exc:
        log.critical("refusing to start: the audit log failed its integrity check (`clonegate audit check`): %s", exc)
        raise
    except SQLAlchemyError as exc:
        if not settings.is_dev:
            raise StartupRefused(
                f"refusing to start in prod mode: the audit log cannot be checked: {exc.__class__.__name__}"
            ) from exc
        log.error("audit store unavailable at start-up: %s", exc.__class__.__name__)


def _b64(data: bytes) -> str:
    return base64.b64encode(bytes(data)).decode()


def _utc(moment: datetime | None) -> datetime | None:
    """Query times without an offset are taken as UTC (event times are stored in UTC)."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def _tenant_scope(principal: Principal, requested: str | None) -> str | None:
    """Admins see every tenant; an auditor bound to a tenant sees only that tenant's events."""
    if Role.ADMIN in principal.roles or principal.tenant is None:
        return requested
    if requested not in (None, principal.tenant):
        raise PermissionDenied(f"this auditor may only read tenant {principal.tenant!r}")
    return principal.tenant


@public_router.get("/public-key", response_class=PlainTextResponse)
def public_key(request: Request) -> str:
    """The checkpoint verifier key (C2SP signed-note format): public, no token needed."""
    return request.app.state.audit_key.verifier.encode() + "\n"


@router.get("/checkpoint")
def checkpoint(session: SessionDep, _: AuditReader) -> dict:
    stored = latest_checkpoint(session)
    return {
        "tree_size": stored.tree_size,
        "root_hash": _b64(stored.root_hash),
        "note": stored.note,
        "created_at": stored.created_at.isoformat(),
    }


@router.get("/events")
def events(
    session: SessionDep,
    principal: AuditReader,
    since: datetime | None = None,
    until: datetime | None = None,
    action: Action | None = None,
    actor: Annotated[str | None, Query(description="the actor's token subject")] = None,
    voice: str | None = None,
    tenant: str | None = None,
    after: Annotated[int, Query(ge=-1, description="cursor: the last index of the previous page")] = -1,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict:
    event_filter = EventFilter(
        since=_utc(since),
        until=_utc(until),
        action=action.value if action else None,
        actor_sub=actor,
        voice_id=voice,
        tenant=_tenant_scope(principal, tenant),
    )
    leaves = list_events(session, event_filter=event_filter, after_index=after, limit=limit)
    return {
        "events": [
            {"index": leaf.leaf_index, "leaf_hash": _b64(leaf.leaf_hash), "event": json.loads(leaf.entry)}
            for leaf in leaves
        ],
        "next_after": leaves[-1].leaf_index if len(leaves) == limit else None,
    }


@router.get("/events/{index}/proof")
def inclusion(
    session: SessionDep, principal: AuditReader, index: int, tree_size: Annotated[int | None, Query(ge=1)] = None
) -> dict:
    leaf, stored, proof = prove_inclusion(session, index=index, size=tree_size)
    if _tenant_scope(principal, None) not in (None, leaf.tenant):
        raise NotFound(f"no event {index} for this auditor")
    return {
        "index": index,
        "tree_size": stored.tree_size,
        "entry": bytes(leaf.entry).decode(),
        "leaf_hash": _b64(leaf.leaf_hash),
        "proof": [_b64(item) for item in proof],
        "checkpoint": stored.note,
    }


@router.get("/consistency")
def consistency(
    session: SessionDep,
    _: AuditReader,
    from_size: Annotated[int, Query(alias="from", ge=0)],
    to_size: Annotated[int | None, Query(alias="to", ge=1)] = None,
) -> dict:
    to_size = latest_checkpoint(session).tree_size if to_size is None else to_size
    proof = prove_consistency(session, old_size=from_size, new_size=to_size)
    return {"from": from_size, "to": to_size, "proof": [_b64(item) for item in proof]}


class ExportRequest(BaseModel):
    """No filter: a full bundle (every event). Any filter: a selected bundle with inclusion proofs."""

    since: datetime | None = None
    until: datetime | None = None
    action: Action | None = None
    actor: str | None = Field(default=None, max_length=200)
    voice: str | None = Field(default=None, max_length=200)
    tenant: str | None = Field(default=None, max_length=200)


@router.post("/exports")
def create_export(
    request: Request, session: SessionDep, principal: AuditReader, body: ExportRequest, background: BackgroundTasks
) -> FileResponse:
    tenant = _tenant_scope(principal, body.tenant)
    filters = dict(
        since=_utc(body.since),
        until=_utc(body.until),
        action=body.action.value if body.action else None,
        actor_sub=body.actor,
        voice_id=body.voice,
        tenant=tenant,
    )
    event_filter = EventFilter(**filters) if any(value is not None for value in filters.values()) else None
    workspace = Path(tempfile.mkdtemp(prefix="audit-export-"))
    background.add_task(shutil.rmtree, workspace, ignore_errors=True)
    key: SigningKey = request.app.state.audit_key
    export_bundle(session, directory=workspace / "bundle", verifier=key.verifier, event_filter=event_filter)
    archive_bundle(workspace / "bundle", workspace / "bundle.tar")
    # The export itself is recorded: who took which slice of the log.
    append_event(
        session,
        event=AuditEvent(
            action=Action.AUDIT_EXPORTED,
            decision=Decision.NONE,
            actor=Actor(
                iss=principal.issuer,
                sub=principal.subject,
                role=sorted(principal.roles)[0].value,
                tenant=principal.tenant,
            ),
        ),
    )
    return FileResponse(workspace / "bundle.tar", media_type="application/x-tar", filename="audit-bundle.tar")
