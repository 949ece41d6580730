"""ASGI middleware: a request id on every response and log line, and the body size limit."""

from __future__ import annotations

import json
import logging
import re
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.errors import error_body
from gateway.logs import request_id_var
from gateway.metrics import HTTP_DURATION, HTTP_REQUESTS, outcome_of, reason_label

log = logging.getLogger("clonegate.http")

# A caller-supplied id is kept only if it is short and harmless in logs and headers.
_ACCEPTABLE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


class RequestContextMiddleware:
    """Assigns the request id, echoes it as `X-Request-ID`, writes one access log line and counts
    the answer in the HTTP metrics (route template, status, outcome, error code)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        supplied = _header(scope, b"x-request-id")
        request_id = supplied if supplied and _ACCEPTABLE_REQUEST_ID.match(supplied) else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500
        reason = "ok"

        async def send_with_id(message: Message) -> None:
            nonlocal status, reason
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
                reason = "ok" if status < 400 else "unknown"
            elif message["type"] == "http.response.body" and reason == "unknown":
                reason = _error_code(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except BaseException:
            # Left set: the server logs the escaping error after this returns, in this request's
            # task, and that line must carry the id too.
            self._finish(scope, status=500, reason="internal_error", started=started)
            raise
        self._finish(scope, status=status, reason=reason, started=started)
        request_id_var.reset(token)

    @staticmethod
    def _finish(scope: Scope, *, status: int, reason: str, started: float) -> None:
        elapsed = time.perf_counter() - started
        route = _route_template(scope)
        method = scope["method"]
        HTTP_REQUESTS.labels(route, method, str(status), outcome_of(status), reason).inc()
        HTTP_DURATION.labels(route, method).observe(elapsed)
        log.info(
            "request",
            extra={
                "method": method,
                "path": scope["path"],
                "status": status,
                "reason": reason,
                "duration_ms": round(elapsed * 1000, 1),
            },
        )


def _route_template(scope: Scope) -> str:
    """The matched route's path template (`/v1/voices/{voice_id}`), never the raw path: a raw
    path would make one time series per id. A path no route matched is 'unmatched'."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


def _error_code(body: bytes) -> str:
    """The code of an error answer: `{"error": "<code>"}`, or the OpenAI shape's `error.code`/`type`."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return "other"
    error = parsed.get("error") if isinstance(parsed, dict) else None
    if isinstance(error, dict):
        error = error.get("code") or error.get("type")
    return reason_label(error)


class BodySizeLimitMiddleware:
    """Answers 413 when the body exceeds the limit, by Content-Length or while streaming."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body_bytes):
            await self._reject(send)
            return

        if declared is not None:
            # The server enforces that the body matches its declared length.
            await self.app(scope, receive, send)
            return
        # A chunked body has no declared length: read it up to the limit before the app runs,
        # so that an oversized upload is answered 413 and the app never sees part of it.
        messages: list[Message] = []
        received = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            received += len(message.get("body", b""))
            if received > self.max_body_bytes:
                await self._reject(send)
                return
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    async def _reject(self, send: Send) -> None:
        body = json.dumps(error_body("payload_too_large", f"request body exceeds {self.max_body_bytes} bytes")).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None
