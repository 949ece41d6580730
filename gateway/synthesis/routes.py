"""`POST /v1/synthesize`: the only route that returns engine audio, always through the pipeline."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

import audit.errors as audit_errors
import engine.errors as engine_errors
import policy.errors as policy
import policy.text_rules as text_rules
import watermark.errors as watermark_errors
from gateway.dependencies import SynthesisDep, Synthesizer
from gateway.errors import ProvenanceSigningFailed, StreamFormatUnsupported, error_responses
from gateway.rate_limits.limiter import RateLimited
from gateway.synthesis.http import streamed_response, whole_response
from gateway.synthesis.schemas import SynthesisBody

router = APIRouter(prefix="/v1", tags=["synthesis"])

# Every refusal of the pipeline (docs/architecture.md): consent, protected speakers, text rules,
# engine, watermark, provenance, the audit log; any of them denies, none releases unmarked audio.
SYNTHESIS_ERRORS = (
    StreamFormatUnsupported,
    RateLimited,
    policy.VoiceNotFound,
    policy.VoiceErased,
    policy.VoiceKeyDestroyed,
    policy.VoiceKeyUnwrapFailed,
    policy.ConsentRequestInvalid,
    policy.ConsentMissing,
    policy.ConsentNotFound,
    policy.ConsentRevoked,
    policy.ConsentNotInWindow,
    policy.ConsentScopeMismatch,
    policy.ConsentUsesExhausted,
    policy.SpeakerProtected,
    policy.SpeakerReviewRequired,
    policy.BlocklistMisconfigured,
    policy.EmbeddingInvalid,
    policy.SpeakerModelError,
    policy.AudioUnusable,
    text_rules.TextRejected,
    text_rules.TextRulesMisconfigured,
    engine_errors.EngineError,
    watermark_errors.WatermarkError,
    ProvenanceSigningFailed,
    audit_errors.AuditUnavailable,
    audit_errors.LogIntegrityError,
)


@router.post(
    "/synthesize",
    response_class=Response,
    responses={
        200: {
            "content": {"audio/wav": {}, "audio/flac": {}, "audio/mpeg": {}, "audio/ogg": {}},
            "description": "watermarked, labelled audio; with stream=true, WAV sent chunk by chunk",
        },
        **error_responses(*SYNTHESIS_ERRORS),
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
