"""`POST /v1/detect`: was this audio marked by this gateway, where, and by which request."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, UploadFile

from gateway.dependencies import DetectCaller, DetectionDep

router = APIRouter(prefix="/v1", tags=["detect"])


@router.post("/detect")
def detect(
    principal: DetectCaller,
    service: DetectionDep,
    audio: Annotated[UploadFile, File(description="wav, flac, mp3, ogg, m4a or webm")],
) -> dict[str, Any]:
    """Per scheme: detected, score, false-positive probability and marked segments."""
    return service.detect(principal=principal, audio=audio.file.read())
