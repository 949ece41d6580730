"""What the API's schemas share: request bodies that refuse unknown fields, ids the database can
hold, response models that name every field they carry, timestamps as the views write them."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from fastapi import Path
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

# Row ids and audit indexes are 64-bit signed integers (BIGINT on PostgreSQL, INTEGER on SQLite):
# a larger number is refused as invalid input before it reaches a query, where it would overflow.
DB_INT_MAX = 2**63 - 1


class RequestBody(BaseModel):
    """A JSON request body: a field the schema does not name is refused (422 naming it), so a
    misspelt option (`output_format` for `format`) is never silently ignored; and a value of
    another JSON type than the schema's is refused, not coerced (`"5"` for an integer, `0` for a
    date-time). FastAPI validates the parsed JSON in Python mode, where strictness would also
    refuse an enum's or a date-time's text: those fields are `Field(strict=False)` and `DateTimeText`."""

    model_config = ConfigDict(extra="forbid", strict=True)


# A calendar date and a time of day (the offset may be left out: UTC is meant). Lax parsing alone
# would also read a number, or a number's text in a query, as Unix time.
_DATE_TIME_TEXT = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?([Zz]|[+-]\d{2}:?\d{2})?$")


def _date_time_text(value: Any) -> Any:
    if not (isinstance(value, str) and _DATE_TIME_TEXT.match(value)):
        raise ValueError("a date-time is RFC 3339 text, e.g. 2026-12-01T12:00:00Z")
    return value


# A date-time given as RFC 3339 text, in a body or a query.
DateTimeText = Annotated[datetime, BeforeValidator(_date_time_text), Field(strict=False)]


RowId = Annotated[int, Path(ge=1, le=DB_INT_MAX, description="a row id")]


class ResponseModel(BaseModel):
    """A response schema: the view must not carry a field the schema does not name (the answer would
    fail validation in the tests rather than drift from the documented contract unnoticed)."""

    model_config = ConfigDict(extra="forbid")


# Views write timestamps with `datetime.isoformat()`; the schema keeps that text as it is.
Timestamp = Annotated[str, Field(json_schema_extra={"format": "date-time"})]
