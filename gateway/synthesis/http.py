"""A released synthesis or an open stream as an HTTP response, for every route that synthesizes.

The synthesis itself runs on a worker thread; a client that goes away cancels it (the engine
stops and the request is recorded as cancelled), not only a send that fails.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import anyio
from fastapi import Request
from fastapi.responses import Response, StreamingResponse

from engine.interface import CancelToken
from gateway.auth import Principal
from gateway.shared.reasons import CLIENT_DISCONNECTED
from gateway.synthesis.encoding import OutputEncoding
from gateway.synthesis.service import Released, SynthesisService
from gateway.synthesis.steps import SynthesisRequest
from gateway.synthesis.streaming import SynthesisStream

DISCONNECT_POLL_SECONDS = 0.25


def released_headers(released: Released) -> dict[str, str]:
    return {
        "X-Clonegate-Audit-Id": str(released.audit_id),
        "X-Clonegate-Release-Audit-Id": str(released.released_audit_id),
        "X-Clonegate-Content-Id": released.content_id,
        "X-Clonegate-Watermark-Id": released.watermark_id,
        # "owner" when the voice's owner used their own voice, which no consent grant stands behind
        "X-Clonegate-Consent-Id": released.consent_id or "owner",
        "X-AI-Generated": "true",
        "Server-Timing": ", ".join(
            f"{name};dur={seconds * 1000:.1f}" for name, seconds in released.step_seconds.items()
        ),
        "Content-Disposition": f'attachment; filename="clonegate-{released.audit_id}"',
    }


def stream_headers(stream: SynthesisStream) -> dict[str, str]:
    admission = stream.admission
    return {
        "X-Clonegate-Audit-Id": str(admission.audit_id),
        "X-Clonegate-Content-Id": admission.content_id,
        "X-Clonegate-Watermark-Id": admission.watermark_id,
        "X-Clonegate-Consent-Id": admission.grant.consent_id or "owner",
        "X-AI-Generated": "true",
        "Content-Disposition": f'attachment; filename="clonegate-{admission.audit_id}"',
    }


async def whole_response(
    service: SynthesisService,
    *,
    http: Request,
    principal: Principal,
    request: SynthesisRequest,
    encoding: OutputEncoding,
) -> Response:
    """Synthesize the whole text, then answer with the released file and its audit headers."""
    cancel = CancelToken()
    watcher = _watch_for_disconnect(http, cancel)
    try:
        released = await anyio.to_thread.run_sync(
            lambda: service.synthesize(principal=principal, request=request, encoding=encoding, cancel=cancel)
        )
    finally:
        watcher.cancel()
    return Response(content=released.body, media_type=released.media_type, headers=released_headers(released))


async def streamed_response(
    service: SynthesisService,
    *,
    http: Request,
    principal: Principal,
    request: SynthesisRequest,
    encoding: OutputEncoding,
) -> StreamingResponse:
    """Admit now (a refusal is still a plain error response), then send each released chunk."""
    cancel = CancelToken()
    opened = await anyio.to_thread.run_sync(
        lambda: service.open_stream(principal=principal, request=request, encoding=encoding, cancel=cancel)
    )
    return StreamingResponse(
        _released_chunks(opened, http, cancel), media_type=opened.media_type, headers=stream_headers(opened)
    )


def _watch_for_disconnect(http: Request, cancel: CancelToken) -> asyncio.Task[None]:
    """Cancel the synthesis as soon as the client goes away, not only when a send fails."""

    async def cancel_when_client_leaves() -> None:
        while not cancel.cancelled:
            if await http.is_disconnected():
                cancel.cancel(CLIENT_DISCONNECTED)
                return
            await asyncio.sleep(DISCONNECT_POLL_SECONDS)

    return asyncio.create_task(cancel_when_client_leaves())


async def _released_chunks(stream: SynthesisStream, http: Request, cancel: CancelToken) -> AsyncIterator[bytes]:
    """The stream's chunks, each produced on a worker thread. However the response ends
    (finished, failed, client gone), the stream is closed here, so one cut short records its
    `request.cancelled` event at once."""
    chunks = iter(stream)
    watcher = _watch_for_disconnect(http, cancel)
    try:
        while (chunk := await anyio.to_thread.run_sync(next, chunks, None)) is not None:
            yield chunk
    finally:
        watcher.cancel()
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(stream.close)
