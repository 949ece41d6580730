"""Request bodies and answers of the audit log routes."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import ConfigDict, Field

from audit.events import Action
from gateway.audit_log.service import EventQuery
from gateway.shared.schemas import DateTimeText, RequestBody, ResponseModel, Timestamp


class ExportRequest(RequestBody):
    """No filter: a full bundle (every event). Any filter: a selected bundle with inclusion proofs."""

    since: DateTimeText | None = None
    until: DateTimeText | None = None
    action: Annotated[Action, Field(strict=False)] | None = None  # its value's text, as the schema says
    actor: str | None = Field(default=None, max_length=200)
    voice: str | None = Field(default=None, max_length=200)
    tenant: str | None = Field(default=None, max_length=200)

    def query(self) -> EventQuery:
        return EventQuery(**self.model_dump())


# --- what the routes answer ------------------------------------------------------------------------


class CheckpointView(ResponseModel):
    tree_size: int
    root_hash: str = Field(description="base64")
    note: str = Field(description="the signed checkpoint (C2SP signed-note format)")
    created_at: Timestamp


class LoggedEvent(ResponseModel):
    index: int
    leaf_hash: str = Field(description="base64")
    event: dict[str, Any] = Field(description="the audit event as it was logged")


class EventPage(ResponseModel):
    events: list[LoggedEvent]
    next_after: int | None = Field(description="the cursor of the next page; null on the last page")


class InclusionProofView(ResponseModel):
    index: int
    tree_size: int
    entry: str = Field(description="the event's canonical bytes")
    leaf_hash: str
    proof: list[str] = Field(description="base64 hashes, leaf to root")
    checkpoint: str


class ConsistencyProofView(ResponseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_size: int = Field(alias="from")
    to_size: int = Field(alias="to")
    proof: list[str]
