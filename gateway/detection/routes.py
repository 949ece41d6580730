"""`POST /v1/detect`: was this audio marked by this gateway, where, and by which request."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, UploadFile

from gateway.audio_io import DECODE_ERRORS
from gateway.dependencies import DetectCaller, DetectionDep
from gateway.detection.schemas import DetectionAnswer
from gateway.errors import DatabaseUnavailable, error_responses
from watermark.errors import WatermarkError

router = APIRouter(prefix="/v1", tags=["detect"])


@router.post(
    "/detect",
    response_model=DetectionAnswer,
    response_model_exclude_unset=True,  # a layer without a warp or a bound leaves those keys out
    responses=error_responses(*DECODE_ERRORS, WatermarkError, DatabaseUnavailable),
)
def detect(
    principal: DetectCaller,
    service: DetectionDep,
    audio: Annotated[UploadFile, File(description="wav, flac, mp3, ogg, m4a or webm")],
) -> dict[str, Any]:
    """Per scheme: detected, score, false-positive probability and marked segments."""
    return service.detect(principal=principal, audio=audio.file.read())
