"""The reason code an audit event records for a failure: the error's own `code`."""

from __future__ import annotations

CLIENT_DISCONNECTED = "client_disconnected"  # a cancel token's reason and the audit reason code


def reason_code(exc: BaseException) -> str:
    """The error's `code`; an error without one is a bug and is recorded as `internal_error`."""
    code = getattr(exc, "code", None)
    return code if isinstance(code, str) and code else "internal_error"
