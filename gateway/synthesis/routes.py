"""`POST /v1/synthesize`: the only route that returns engine audio, always through the pipeline."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from gateway.dependencies import SynthesisDep, Synthesizer
from gateway.synthesis.http import streamed_response, whole_response
from gateway.synthesis.schemas import SynthesisBody

router = APIRouter(prefix="/v1", tags=["synthesis"])


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
    http: Request,
    principal: Synthesizer,
    service: SynthesisDep,
    stream: Annotated[
        bool, Query(description="send each chunk of sentences as soon as it is marked and released")
    ] = False,
) -> Response:
    """Clone speech in a consented voice: consent, protected speakers, audit, engine, watermark."""
    request = body.synthesis_request()
    if stream:
        streamed = service.stream_encoding(body.format)
        return await streamed_response(service, http=http, principal=principal, request=request, encoding=streamed)
    labelled = service.file_encoding(body.format)
    return await whole_response(service, http=http, principal=principal, request=request, encoding=labelled)
