"""Streamed WAV: a RIFF header whose sizes say "unknown length", then 16-bit PCM of marked audio.

A streamed response cannot be written by a whole-file encoder: its length is not known when the
first bytes leave. The header uses the 0xFFFFFFFF sizes that streaming WAV writers (ffmpeg,
sox) use and readers (libsndfile, ffmpeg) accept, and carries the same label as a whole-file
WAV in its LIST/INFO chunk, ahead of the audio. Only `MarkedAudio` can be turned into PCM here,
as in `gateway/synthesis/labelling.py`. A C2PA manifest needs the finished file's hash, so a stream has
none; its chunks carry the watermark and each is under a `released` audit event.
"""

from __future__ import annotations

import struct

import numpy as np

from gateway.synthesis.labelling import ContentLabel
from gateway.synthesis.marked import MarkedAudio

UNKNOWN_SIZE = 0xFFFFFFFF
MEDIA_TYPE = "audio/wav"


def _chunk(tag: bytes, data: bytes) -> bytes:
    return tag + struct.pack("<I", len(data)) + data + (b"\0" if len(data) % 2 else b"")


def _info_text(text: str) -> bytes:
    return text.encode("utf-8") + b"\0"


def wav_stream_header(*, sample_rate: int, label: ContentLabel) -> bytes:
    """RIFF/WAVE header for mono 16-bit PCM of unknown length, labelled like a whole-file WAV."""
    fmt = struct.pack("<HHIIHH", 1, 1, sample_rate, sample_rate * 2, 2, 16)
    info = b"INFO" + b"".join(
        _chunk(tag, _info_text(text))
        for tag, text in (
            (b"INAM", "AI-generated speech"),
            (b"IART", label.provider),
            (b"ISFT", f"{label.system} {label.system_version}"),
            (b"ICRD", label.created_at.isoformat()),
            (b"ICMT", label.summary()),
            (b"ICOP", f"AI-generated; content id {label.content_id}"),
        )
    )
    return (
        b"RIFF"
        + struct.pack("<I", UNKNOWN_SIZE)
        + b"WAVE"
        + _chunk(b"fmt ", fmt)
        + _chunk(b"LIST", info)
        + b"data"
        + struct.pack("<I", UNKNOWN_SIZE)
    )


def pcm16(audio: MarkedAudio) -> bytes:
    """Marked samples as little-endian 16-bit PCM (rounded as libsndfile's PCM_16 writer does)."""
    if not isinstance(audio, MarkedAudio):
        raise TypeError(f"only marked audio can be streamed, not {type(audio).__name__}")
    scaled = np.clip(np.asarray(audio.samples, dtype=np.float64), -1.0, 1.0) * 32767.0
    return np.round(scaled).astype("<i2").tobytes()
