"""What the API's schemas share: request bodies that refuse unknown fields, ids the database can
hold, response models that name every field they carry, timestamps as the views write them."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field

# Row ids and audit indexes are 64-bit signed integers (BIGINT on PostgreSQL, INTEGER on SQLite):
# a larger number is refused as invalid input before it reaches a query, where it would overflow.
DB_INT_MAX = 2**63 - 1


class RequestBody(BaseModel):
    """A JSON request body: a field the schema does not name is refused (422 naming it), so a
    misspelt option (`output_format` for `format`) is never silently ignored."""

    model_config = ConfigDict(extra="forbid")


RowId = Annotated[int, Path(ge=1, le=DB_INT_MAX, description="a row id")]


class ResponseModel(BaseModel):
    """A response schema: the view must not carry a field the schema does not name (the answer would
    fail validation in the tests rather than drift from the documented contract unnoticed)."""

    model_config = ConfigDict(extra="forbid")


# Views write timestamps with `datetime.isoformat()`; the schema keeps that text as it is.
Timestamp = Annotated[str, Field(json_schema_extra={"format": "date-time"})]
