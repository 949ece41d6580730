"""Uploaded recordings: decoded once, bounded in length and count, hashed for the audit log."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import UploadFile

from gateway.audio_io import DecodedAudio, decode_audio
from gateway.errors import PayloadTooLarge
from policy.consent.enrollment import Recording

# Recordings a person reads aloud: a statement takes seconds, references at most minutes.
CONSENT_MAX_SECONDS = 60.0
REFERENCE_MAX_SECONDS = 120.0
MAX_REFERENCES = 8
# Audit digests hold at most 16 reference hashes (audit/events.py).
MAX_AUDITED_DIGESTS = 16


def read_upload(upload: UploadFile, *, max_seconds: float) -> DecodedAudio:
    """Decode one uploaded file; the body-size middleware already bounds the bytes. Called from a
    worker thread: the upload is spooled to memory or disk before the route runs."""
    upload.file.seek(0)
    return decode_audio(upload.file.read(), max_seconds=max_seconds)


def check_reference_count(uploads: Sequence[object]) -> None:
    if len(uploads) > MAX_REFERENCES:
        raise PayloadTooLarge(f"at most {MAX_REFERENCES} reference recordings per request", code="too_many_references")


def read_references(uploads: Sequence[UploadFile]) -> list[DecodedAudio]:
    check_reference_count(uploads)
    return [read_upload(upload, max_seconds=REFERENCE_MAX_SECONDS) for upload in uploads]


def as_recording(decoded: DecodedAudio) -> Recording:
    return Recording(audio=decoded.samples, sample_rate=decoded.sample_rate)


def digests_of(decoded: Sequence[DecodedAudio]) -> tuple[str, ...]:
    return tuple(item.sha256 for item in decoded[:MAX_AUDITED_DIGESTS])
