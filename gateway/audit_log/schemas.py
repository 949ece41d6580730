"""Request bodies of the audit log routes."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from audit.events import Action
from gateway.audit_log.service import EventQuery


class ExportRequest(BaseModel):
    """No filter: a full bundle (every event). Any filter: a selected bundle with inclusion proofs."""

    since: datetime | None = None
    until: datetime | None = None
    action: Action | None = None
    actor: str | None = Field(default=None, max_length=200)
    voice: str | None = Field(default=None, max_length=200)
    tenant: str | None = Field(default=None, max_length=200)

    def query(self) -> EventQuery:
        return EventQuery(**self.model_dump())
