"""Canonical JSON bytes for hashing: the subset of RFC 8785 (JCS) that audit events use.

Accepted values are objects with string keys, arrays, strings, booleans, null and integers
within +-(2**53 - 1). Floats are refused rather than canonicalized: RFC 8785 prints them with
the ECMAScript number algorithm, which Python's ``repr`` does not match in every case, and audit
events have no use for them. Within this subset the output equals RFC 8785:

* no whitespace; object members sorted by the UTF-16 code units of their names;
* strings as UTF-8 with only ``"``, ``\\`` and U+0000..U+001F escaped (``\\b \\t \\n \\f \\r``
  short forms, the rest as ``\\u00xx`` in lower-case hex), exactly what ``json.dumps`` does
  with ``ensure_ascii=False``;
* lone surrogates are refused (they have no UTF-8 encoding).
"""

from __future__ import annotations

import json
from typing import Any

from audit.errors import NonCanonicalValue

MAX_SAFE_INTEGER = 2**53 - 1
_MAX_DEPTH = 16

_encode_string = json.JSONEncoder(ensure_ascii=False).encode


def _utf16_key(name: str) -> bytes:
    return name.encode("utf-16-be", "surrogatepass")


def _emit(value: Any, out: list[str], depth: int) -> None:
    if depth > _MAX_DEPTH:
        raise NonCanonicalValue(f"value nested deeper than {_MAX_DEPTH} levels")
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        if not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            raise NonCanonicalValue(f"integer {value} is outside the I-JSON safe range")
        out.append(str(int(value)))
    elif isinstance(value, float):
        raise NonCanonicalValue("floats are not allowed in audit events")
    elif isinstance(value, str):
        out.append(_encode_string(value))
    elif isinstance(value, (list, tuple)):
        out.append("[")
        for position, item in enumerate(value):
            if position:
                out.append(",")
            _emit(item, out, depth + 1)
        out.append("]")
    elif isinstance(value, dict):
        for name in value:
            if not isinstance(name, str):
                raise NonCanonicalValue(f"object member name {name!r} is not a string")
        out.append("{")
        for position, name in enumerate(sorted(value, key=_utf16_key)):
            if position:
                out.append(",")
            out.append(_encode_string(name))
            out.append(":")
            _emit(value[name], out, depth + 1)
        out.append("}")
    else:
        raise NonCanonicalValue(f"type {type(value).__name__} has no canonical JSON form")


def canonical_json(value: Any) -> bytes:
    """Return the canonical UTF-8 bytes of ``value`` (see the module docstring)."""
    out: list[str] = []
    _emit(value, out, 0)
    try:
        return "".join(out).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise NonCanonicalValue("string contains a lone surrogate") from exc
