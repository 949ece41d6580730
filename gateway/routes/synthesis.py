"""`POST /v1/synthesize`: the only route that returns engine audio, always through the pipeline."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Literal

import anyio
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, Field

from engine.interface import CancelToken
from gateway.auth import Permission, Principal, require
from gateway.pipeline.steps import SynthesisRequest, payload_for
from gateway.pipeline.streaming import CLIENT_DISCONNECTED, SynthesisStream
from gateway.pipeline.synthesis import Released, SynthesisPipeline

router = APIRouter(prefix="/v1", tags=["synthesis"])

# Identifiers are opaque tokens; anything else is refused before it reaches the database or log.
IDENTIFIER_PATTERN = r"^[A-Za-z0-9._:-]{1,64}$"
WORD_PATTERN = r"^[a-z][a-z0-9_-]{0,31}$"
DISCONNECT_POLL_SECONDS = 0.25


class SynthesisBody(BaseModel):
    voice_id: str = Field(pattern=IDENTIFIER_PATTERN)
    text: str = Field(min_length=1, max_length=100_000)
    language: str = Field(default="en", pattern=r"^[a-z]{2,3}(-[A-Za-z]{2,4})?$")
    purpose: str = Field(pattern=WORD_PATTERN)
    format: Literal["wav", "flac", "mp3", "ogg"] = "wav"
    speed: float = Field(default=1.0, ge=0.5, le=2.0, allow_inf_nan=False)
    pitch_semitones: float = Field(default=0.0, ge=-12.0, le=12.0, allow_inf_nan=False)


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
        "X-Clonegate-Content-Id": stream.label.content_id,
        "X-Clonegate-Watermark-Id": payload_for(admission.audit_id).hex(),
        "X-Clonegate-Consent-Id": admission.grant.consent_id or "owner",
        "X-AI-Generated": "true",
        "Content-Disposition": f'attachment; filename="clonegate-{admission.audit_id}"',
    }


def _watch_for_disconnect(request: Request, cancel: CancelToken) -> asyncio.Task:
    """Cancel the synthesis as soon as the client goes away, not only when a send fails."""

    async def cancel_when_client_leaves() -> None:
        while not cancel.cancelled:
            if await request.is_disconnected():
                cancel.cancel(CLIENT_DISCONNECTED)
                return
            await asyncio.sleep(DISCONNECT_POLL_SECONDS)

    return asyncio.create_task(cancel_when_client_leaves())


async def _released_chunks(stream: SynthesisStream, request: Request, cancel: CancelToken) -> AsyncIterator[bytes]:
    """The stream's chunks, each produced on a worker thread. However the response ends
    (finished, failed, client gone), the stream is closed here, so one cut short records its
    `request.cancelled` event at once."""
    chunks = iter(stream)
    watcher = _watch_for_disconnect(request, cancel)
    try:
        while (chunk := await anyio.to_thread.run_sync(next, chunks, None)) is not None:
            yield chunk
    finally:
        watcher.cancel()
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(stream.close)


@router.post(
    "/synthesize",
    response_class=Response,
    responses={
        200: {
            "content": {"audio/wav": {}, "audio/flac": {}, "audio/mpeg": {}, "audio/ogg": {}},
            "description": "watermarked, labelled audio; with stream=true, WAV sent chunk by chunk",
        }
    },
)
async def synthesize(
    body: SynthesisBody,
    request: Request,
    principal: Annotated[Principal, require(Permission.SYNTHESIZE)],
    stream: Annotated[
        bool, Query(description="send each chunk of sentences as soon as it is marked and released")
    ] = False,
) -> Response:
    """Clone speech in a consented voice: consent, protected speakers, audit, engine, watermark."""
    pipeline: SynthesisPipeline = request.app.state.pipeline
    synthesis = SynthesisRequest(
        voice_id=body.voice_id,
        text=body.text,
        language=body.language,
        purpose=body.purpose,
        output_format=body.format,
        speed=body.speed,
        pitch_semitones=body.pitch_semitones,
    )
    cancel = CancelToken()
    if stream:
        # Admission runs before the response starts, so a refusal is still a plain error response.
        opened = await anyio.to_thread.run_sync(
            lambda: pipeline.open_stream(principal=principal, request=synthesis, cancel=cancel)
        )
        return StreamingResponse(
            _released_chunks(opened, request, cancel), media_type=opened.media_type, headers=stream_headers(opened)
        )
    watcher = _watch_for_disconnect(request, cancel)
    try:
        released = await anyio.to_thread.run_sync(
            lambda: pipeline.run(principal=principal, request=synthesis, cancel=cancel)
        )
    finally:
        watcher.cancel()
    return Response(content=released.body, media_type=released.media_type, headers=released_headers(released))
