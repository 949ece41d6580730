"""ASGI middleware: a request id on every response and log line, and the body size limit."""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Sequence
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.errors import ErrorShape, error_body, shaped_error_body
from gateway.logs import request_id_var

log = logging.getLogger("clonegate.http")

# A caller-supplied id is kept only if it is short and harmless in logs and headers.
_ACCEPTABLE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


class RequestContextMiddleware:
    """Assigns the request id, echoes it as `X-Request-ID`, and writes one access log line.

    It is also the last resort for an error nothing mapped: the log line is written here, while
    the request id is still set (Starlette's server-error handler runs outside every middleware),
    and the 500 answer carries the id too.
    """

    def __init__(self, app: ASGIApp, *, shapes: Sequence[ErrorShape] = ()) -> None:
        self.app = app
        self.shapes = shapes  # the error bodies of other APIs, for the 500 on their paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        supplied = _header(scope, b"x-request-id")
        request_id = supplied if supplied and _ACCEPTABLE_REQUEST_ID.match(supplied) else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            log.error("unhandled error", exc_info=exc, extra={"error_type": type(exc).__name__})
            if response_started:
                raise  # a body already under way cannot become an error answer: the server drops it
            body = shaped_error_body(
                self.shapes, scope["path"], status=500, code="internal_error", detail="internal error"
            )
            await _send_json(send_with_id, 500, body)
        finally:
            log.info(
                "request",
                extra={
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                },
            )
            request_id_var.reset(token)


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
        detail = f"request body exceeds {self.max_body_bytes} bytes"
        await _send_json(send, 413, error_body("payload_too_large", detail))


async def _send_json(send: Send, status: int, content: dict[str, Any]) -> None:
    body = json.dumps(content).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            decoded: str = value.decode("latin-1")
            return decoded
    return None
