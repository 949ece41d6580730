"""OpenAI's speech API: `POST /v1/audio/speech`, `GET /v1/audio/voices`, `GET /v1/models`.

Errors on these routes have OpenAI's shape (gateway/openai_api/errors.py), declared below so the
OpenAPI document says so."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from fastapi.responses import Response

from gateway.dependencies import OpenAISpeechDep, SessionDep, Synthesizer
from gateway.openai_api.http import SSE_MEDIA_TYPE, speech_response
from gateway.openai_api.schemas import ModelList, OpenAIErrorBody, SpeechBody, VoiceList
from gateway.synthesis.schemas import WORD_PATTERN

router = APIRouter(prefix="/v1", tags=["openai"])


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": OpenAIErrorBody, "description": "OpenAI's error body"} for status in statuses}


COMMON_ERRORS = (401, 403, 422, 500, 503)
SPEECH_ERRORS = (*COMMON_ERRORS, 400, 404, 409, 410, 413, 429, 502, 504)


@router.post(
    "/audio/speech",
    response_class=Response,
    responses={
        200: {
            "content": {
                "audio/mpeg": {},
                "audio/ogg": {},
                "audio/aac": {},
                "audio/flac": {},
                "audio/wav": {},
                "audio/pcm": {},
                SSE_MEDIA_TYPE: {},
            },
            "description": "watermarked, labelled speech in the requested format, whole or streamed",
        },
        **_errors(*SPEECH_ERRORS),
    },
)
async def create_speech(
    body: SpeechBody,
    http: Request,
    principal: Synthesizer,
    service: OpenAISpeechDep,
    x_clonegate_purpose: Annotated[
        str | None, Header(pattern=WORD_PATTERN, description="the purpose, when the body names none")
    ] = None,
) -> Response:
    """OpenAI's text-to-speech, through clonegate's governed synthesis pipeline."""
    plan = service.plan(principal=principal, body=body, header_purpose=x_clonegate_purpose)
    return await speech_response(service.synthesis, http=http, principal=principal, plan=plan)


@router.get("/audio/voices", responses=_errors(*COMMON_ERRORS))
def list_voices(session: SessionDep, principal: Synthesizer, service: OpenAISpeechDep) -> VoiceList:
    """The voices the caller may synthesize with, and for what (purposes, languages, window, uses)."""
    return service.voices(session, principal=principal)


@router.get("/models", responses=_errors(*COMMON_ERRORS))
def list_models(principal: Synthesizer, service: OpenAISpeechDep) -> ModelList:
    """The accepted model names; each runs the configured engine."""
    return service.models()
