"""Decoding uploaded audio into checked float arrays; the only place that parses audio bytes.

The container is recognised by its magic bytes, never by a file name or a client's content
type. wav, flac, ogg (Vorbis/Opus) and mp3 are decoded by libsndfile; webm, mp4/m4a and raw AAC by ffmpeg
in a subprocess with a time limit. Every rejection is an `AudioRejected` with its own code.
"""

from __future__ import annotations

import hashlib
import io
import subprocess
from dataclasses import dataclass

import numpy as np
import soundfile

from gateway.errors import ErrorSource, GatewayError

MIN_SAMPLE_RATE = 8_000
MAX_SAMPLE_RATE = 192_000
DEFAULT_MAX_SECONDS = 600.0
FFMPEG_TIMEOUT_SECONDS = 60


class AudioRejected(GatewayError):
    """The upload is not usable audio; `code` says why."""

    code = "audio_invalid"
    status = 422


class UnsupportedAudioFormat(AudioRejected):
    code = "audio_unsupported_format"
    status = 415


# Every answer `decode_audio` can give, for the routes that take an upload to declare.
DECODE_ERRORS: tuple[ErrorSource, ...] = (
    UnsupportedAudioFormat,
    *(
        (422, code)
        for code in (
            "audio_empty",
            "audio_not_finite",
            "audio_too_short",
            "audio_too_long",
            "audio_sample_rate_unsupported",
            "audio_corrupt",
        )
    ),
)


@dataclass(frozen=True)
class DecodedAudio:
    """Mono float32 samples in [-1, 1] at the file's own sample rate."""

    samples: np.ndarray
    sample_rate: int
    container: str
    source_channels: int
    sha256: str  # of the uploaded bytes, for audit events and replay checks

    @property
    def duration_seconds(self) -> float:
        return len(self.samples) / self.sample_rate


def _after_id3v2(data: bytes) -> bytes:
    """The bytes after a leading ID3v2 tag (C2PA puts a FLAC file's manifest in one), or all."""
    if data[:3] != b"ID3" or len(data) < 10:
        return data
    size = (data[6] & 0x7F) << 21 | (data[7] & 0x7F) << 14 | (data[8] & 0x7F) << 7 | (data[9] & 0x7F)  # syncsafe
    return data[10 + size + (10 if data[5] & 0x10 else 0) :]  # a footer flag adds 10 bytes


def sniff_container(data: bytes) -> str:
    """The container format from the first bytes, or `UnsupportedAudioFormat`."""
    if _after_id3v2(data)[:4] == b"fLaC":
        return "flac"
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return "wav"
    if data[:4] == b"fLaC":
        return "flac"
    if data[:4] == b"OggS":
        return "ogg"
    if len(data) > 1 and data[0] == 0xFF and data[1] & 0xF6 == 0xF0:
        return "aac"  # ADTS: MPEG sync word with layer bits 00
    if data[:3] == b"ID3" or (len(data) > 1 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0):
        return "mp3"
    if data[:4] == b"\x1a\x45\xdf\xa3":
        return "webm"
    if data[4:8] == b"ftyp":
        return "mp4"
    raise UnsupportedAudioFormat("not a wav, flac, ogg, mp3, aac, webm or mp4/m4a file")


def decode_audio(
    data: bytes,
    *,
    min_seconds: float = 0.0,
    max_seconds: float = DEFAULT_MAX_SECONDS,
) -> DecodedAudio:
    if not data:
        raise AudioRejected("the audio upload is empty", code="audio_empty")
    container = sniff_container(data)
    if container in ("webm", "mp4", "aac"):
        samples, sample_rate = _decode_with_ffmpeg(data, max_seconds=max_seconds)
    else:
        samples, sample_rate = _decode_with_libsndfile(data, max_seconds=max_seconds)
    channels = 1 if samples.ndim == 1 else samples.shape[1]
    mono = samples if samples.ndim == 1 else samples.mean(axis=1, dtype=np.float32)
    if mono.size == 0:
        raise AudioRejected("the audio has no samples", code="audio_empty")
    if not np.all(np.isfinite(mono)):
        raise AudioRejected("the audio contains NaN or infinite samples", code="audio_not_finite")
    duration = mono.size / sample_rate
    if duration < min_seconds:
        raise AudioRejected(
            f"the audio lasts {duration:.2f} s; at least {min_seconds:g} s is needed", code="audio_too_short"
        )
    return DecodedAudio(
        samples=np.clip(mono, -1.0, 1.0).astype(np.float32, copy=False),
        sample_rate=sample_rate,
        container=container,
        source_channels=channels,
        sha256=hashlib.sha256(data).hexdigest(),
    )


def _decode_with_libsndfile(data: bytes, *, max_seconds: float) -> tuple[np.ndarray, int]:
    try:
        with soundfile.SoundFile(io.BytesIO(data)) as audio_file:
            sample_rate = audio_file.samplerate
            if not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE:
                raise AudioRejected(
                    f"sample rate {sample_rate} Hz is outside {MIN_SAMPLE_RATE}–{MAX_SAMPLE_RATE} Hz",
                    code="audio_sample_rate_unsupported",
                )
            # Read one frame past the limit, never more: streamed files do not declare their
            # length, and a hostile header must not make the gateway decode hours of audio.
            limit = int(max_seconds * sample_rate)
            samples = audio_file.read(frames=limit + 1, dtype="float32", always_2d=False)
    except soundfile.LibsndfileError as exc:
        raise AudioRejected(f"the audio cannot be decoded: {exc}", code="audio_corrupt") from exc
    except (RuntimeError, ValueError) as exc:  # soundfile raises these for truncated streams
        raise AudioRejected(f"the audio cannot be decoded: {exc}", code="audio_corrupt") from exc
    if len(samples) > limit:
        raise AudioRejected(f"the audio is longer than {max_seconds:g} s", code="audio_too_long")
    return samples, sample_rate


def _decode_with_ffmpeg(data: bytes, *, max_seconds: float) -> tuple[np.ndarray, int]:
    # ffmpeg writes a wav (keeping the source rate and channels) that libsndfile then checks;
    # `-t` caps the decoded length so a hostile file cannot make it run away.
    command = [
        "ffmpeg",
        "-nostdin",
        "-hide_banner",
        "-loglevel",
        "error",
        "-i",
        "pipe:0",
        "-t",
        str(max_seconds + 1),
        "-vn",
        "-sn",
        "-dn",
        "-c:a",
        "pcm_f32le",
        "-f",
        "wav",
        "pipe:1",
    ]
    try:
        result = subprocess.run(command, input=data, capture_output=True, timeout=FFMPEG_TIMEOUT_SECONDS, check=False)
    except FileNotFoundError as exc:
        raise UnsupportedAudioFormat("webm, mp4 and aac need ffmpeg, which is not installed") from exc
    except subprocess.TimeoutExpired as exc:
        raise AudioRejected("decoding took too long", code="audio_corrupt") from exc
    if result.returncode != 0 or not result.stdout:
        reason = result.stderr.decode(errors="replace").strip().splitlines()
        raise AudioRejected(
            f"the audio cannot be decoded: {reason[-1] if reason else 'no audio stream'}", code="audio_corrupt"
        )
    return _decode_with_libsndfile(_fix_streamed_wav_sizes(result.stdout), max_seconds=max_seconds)


def _fix_streamed_wav_sizes(wav: bytes) -> bytes:
    """ffmpeg cannot seek back on a pipe, so it leaves the RIFF and data sizes unset."""
    data_at = wav.find(b"data", 12)
    if wav[:4] != b"RIFF" or data_at < 0:
        return wav
    fixed = bytearray(wav)
    fixed[4:8] = (len(wav) - 8).to_bytes(4, "little")
    fixed[data_at + 4 : data_at + 8] = (len(wav) - data_at - 8).to_bytes(4, "little")
    return bytes(fixed)
