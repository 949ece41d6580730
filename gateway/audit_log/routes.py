"""Audit log HTTP API: the public key for anyone, reads, proofs and exports for auditors and admins."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Query
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, PlainTextResponse

from audit.errors import ProofUnavailable
from audit.events import Action
from gateway.audit_log.schemas import (
    CheckpointView,
    ConsistencyProofView,
    EventPage,
    ExportRequest,
    InclusionProofView,
)
from gateway.audit_log.service import EventQuery
from gateway.dependencies import AuditDep, AuditReader, SessionDep
from gateway.errors import NotFound, error_responses
from gateway.shared.schemas import DB_INT_MAX, DateTimeText

router = APIRouter(prefix="/v1/audit", tags=["audit"])


@router.get("/public-key", response_class=PlainTextResponse)
def public_key(service: AuditDep) -> str:
    """The checkpoint verifier key (C2SP signed-note format): public, no token needed."""
    return service.public_key()


@router.get("/checkpoint", response_model=CheckpointView, responses=error_responses(ProofUnavailable))
def checkpoint(session: SessionDep, _: AuditReader, service: AuditDep) -> dict[str, Any]:
    return service.checkpoint(session)


@router.get("/events", response_model=EventPage)
def events(
    session: SessionDep,
    principal: AuditReader,
    service: AuditDep,
    since: DateTimeText | None = None,
    until: DateTimeText | None = None,
    action: Action | None = None,
    actor: Annotated[str | None, Query(description="the actor's token subject")] = None,
    voice: str | None = None,
    tenant: str | None = None,
    after: Annotated[int, Query(ge=-1, le=DB_INT_MAX, description="cursor: the last index of the previous page")] = -1,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    query = EventQuery(since=since, until=until, action=action, actor=actor, voice=voice, tenant=tenant)
    return service.events(session, principal=principal, query=query, after=after, limit=limit)


@router.get(
    "/events/{index}/proof", response_model=InclusionProofView, responses=error_responses(ProofUnavailable, NotFound)
)
def inclusion(
    session: SessionDep,
    principal: AuditReader,
    service: AuditDep,
    index: Annotated[int, PathParam(ge=0, le=DB_INT_MAX, description="the event's leaf index")],
    tree_size: Annotated[int | None, Query(ge=1, le=DB_INT_MAX)] = None,
) -> dict[str, Any]:
    return service.inclusion(session, principal=principal, index=index, tree_size=tree_size)


@router.get("/consistency", response_model=ConsistencyProofView, responses=error_responses(ProofUnavailable))
def consistency(
    session: SessionDep,
    _: AuditReader,
    service: AuditDep,
    from_size: Annotated[int, Query(alias="from", ge=0, le=DB_INT_MAX)],
    to_size: Annotated[int | None, Query(alias="to", ge=1, le=DB_INT_MAX)] = None,
) -> dict[str, Any]:
    return service.consistency(session, from_size=from_size, to_size=to_size)


@router.post(
    "/exports",
    response_class=FileResponse,
    responses={
        200: {"content": {"application/x-tar": {}}, "description": "the bundle, a tar archive"},
        **error_responses(ProofUnavailable),
    },
)
def create_export(
    session: SessionDep, principal: AuditReader, service: AuditDep, body: ExportRequest, background: BackgroundTasks
) -> FileResponse:
    """A bundle to verify offline with `clonegate audit verify`; the export itself is recorded."""
    workspace = Path(tempfile.mkdtemp(prefix="audit-export-"))
    background.add_task(shutil.rmtree, workspace, ignore_errors=True)
    archive = service.export(session, principal=principal, query=body.query(), workspace=workspace)
    return FileResponse(archive, media_type="application/x-tar", filename="audit-bundle.tar")
