"""A planned OpenAI speech request as an HTTP response: the whole file, chunked audio, or
OpenAI's server-sent events. Synthesis and streaming are `gateway.synthesis.http`'s: each chunk
is marked and released before it is sent, whichever way it is framed here."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterable, AsyncIterator
from contextlib import aclosing

from fastapi import Request
from fastapi.responses import Response, StreamingResponse

from gateway.auth import Principal
from gateway.openai_api.service import SpeechPlan
from gateway.synthesis.http import streamed_response, whole_response
from gateway.synthesis.service import SynthesisService

SSE_MEDIA_TYPE = "text/event-stream"
# clonegate counts no tokens; the done event carries OpenAI's usage fields as zeros
NO_USAGE = {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}


async def speech_response(
    service: SynthesisService, *, http: Request, principal: Principal, plan: SpeechPlan
) -> Response:
    if plan.stream_format is None:
        return await whole_response(
            service, http=http, principal=principal, request=plan.request, encoding=plan.encoding
        )
    streamed = await streamed_response(
        service, http=http, principal=principal, request=plan.request, encoding=plan.encoding
    )
    if plan.stream_format == "audio":
        return streamed
    headers = {
        name: value
        for name, value in streamed.headers.items()
        if name.lower() not in ("content-type", "content-length", "content-disposition")
    }
    return StreamingResponse(
        _speech_events(streamed.body_iterator),
        media_type=SSE_MEDIA_TYPE,
        headers={**headers, "Cache-Control": "no-cache"},
    )


def _event(payload: dict[str, object]) -> bytes:
    return f"data: {json.dumps(payload, separators=(',', ':'))}\n\n".encode()


async def _speech_events(chunks: AsyncIterable[str | bytes | memoryview]) -> AsyncIterator[bytes]:
    """One `speech.audio.delta` per released chunk, then `speech.audio.done` once all were sent.
    Closing this closes the audio stream, which records a cut-short request as cancelled."""
    async with aclosing(chunks) as audio:  # type: ignore[type-var]
        async for chunk in audio:
            data = chunk.encode() if isinstance(chunk, str) else bytes(chunk)
            yield _event({"type": "speech.audio.delta", "audio": base64.b64encode(data).decode("ascii")})
    yield _event({"type": "speech.audio.done", "usage": NO_USAGE})
