"""OpenAI's error body on the OpenAI routes, and the refusals only this API has.

`{"error": {"message", "type", "code", "param"}}`: the openai client raises its typed error from
the HTTP status (403 `PermissionDeniedError`, 429 `RateLimitError`, ...) and exposes `code`,
which is clonegate's reason code, the same one the audit event records.
"""

from __future__ import annotations

from typing import Any

from gateway.errors import GatewayError

# The `type` OpenAI's API gives each status (openai-python's `_make_status_error` maps the status
# to the exception class; `type` is informational).
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    410: "not_found_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


class OpenAIErrorShape:
    def serves(self, path: str) -> bool:
        return path.startswith("/v1/audio/") or path == "/v1/models" or path.startswith("/v1/models/")

    def body(self, *, status: int, code: str, detail: str, param: str | None) -> dict[str, Any]:
        kind = ERROR_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
        return {"error": {"message": detail, "type": kind, "code": code, "param": param}}


class ModelNotAccepted(GatewayError):
    code = "model_not_found"
    status = 404


class SpeedUnsupported(GatewayError):
    code = "speed_unsupported"
    status = 422


class InstructionsUnsupported(GatewayError):
    code = "instructions_unsupported"
    status = 422


class PurposeRequired(GatewayError):
    code = "purpose_required"
    status = 422
