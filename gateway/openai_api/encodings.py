"""OpenAI's `response_format`s as output encodings of the synthesis service.

mp3, flac, wav and opus are the labelled files of `POST /v1/synthesize` (opus is Ogg Opus, as
OpenAI sends it). Two more:

- `aac`: ADTS frames from ffmpeg's AAC encoder. ADTS has no tag fields, so the label travels in
  the response headers only; the pipeline decodes the frames and verifies the mark (lossy).
- `pcm`: headerless 16-bit little-endian mono at 24 kHz, what OpenAI's clients expect. The
  engine's audio is resampled after marking, and a headerless stream cannot be decoded by the
  pipeline's own check, so this encoder verifies the keyed mark in exactly the samples it writes
  (with the pipeline's `verify_keyed_mark`) and fails closed.

A stream (`stream_format=audio` or `sse`) sends pcm, wav, aac or mp3: each released chunk is
encoded on its own into bytes that continue the previous ones (PCM, ADTS frames, MP3 frames with
no Xing header, which would tell a decoder to stop after the first chunk). FLAC and Ogg Opus have
whole-file headers and are refused when streamed.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from math import gcd

import numpy as np
from scipy.signal import resample_poly

from gateway.errors import GatewayError, StreamFormatUnsupported
from gateway.synthesis.encoding import OutputEncoding, PieceEncoder, WavStream
from gateway.synthesis.labelling import ContentLabel
from gateway.synthesis.marked import MarkedAudio, verify_keyed_mark
from gateway.synthesis.service import SynthesisService
from gateway.synthesis.wav_stream import pcm16
from watermark import WatermarkSelfCheckFailed, WatermarkStack

PCM_SAMPLE_RATE = 24_000
PCM_MEDIA_TYPE = "audio/pcm"
AAC_MEDIA_TYPE = "audio/aac"
MP3_MEDIA_TYPE = "audio/mpeg"
FFMPEG_TIMEOUT_SECONDS = 60
# OpenAI's format name -> the labelled file format of gateway/synthesis/labelling.py
LABELLED_FILES = {"mp3": "mp3", "flac": "flac", "wav": "wav", "opus": "ogg"}
STREAMED_FORMATS = ("pcm", "wav", "aac", "mp3")


class EncoderFailed(GatewayError):
    """The codec could not encode the marked audio: nothing is released (503, as for an output
    that cannot be marked), and the request is recorded as failed with this code."""

    code = "output_encoding_failed"
    status = 503


def _ffmpeg_encode(audio: MarkedAudio, arguments: list[str]) -> bytes:
    command = [
        "ffmpeg",
        "-nostdin",
        "-hide_banner",
        "-loglevel",
        "error",
        "-f",
        "s16le",
        "-ar",
        str(audio.sample_rate),
        "-ac",
        "1",
        "-i",
        "pipe:0",
        *arguments,
        "pipe:1",
    ]
    try:
        result = subprocess.run(
            command, input=pcm16(audio), capture_output=True, timeout=FFMPEG_TIMEOUT_SECONDS, check=False
        )
    except (FileNotFoundError, subprocess.TimeoutExpired) as exc:
        raise EncoderFailed(f"ffmpeg could not encode the output: {type(exc).__name__}") from exc
    if result.returncode != 0 or not result.stdout:
        reason = result.stderr.decode(errors="replace").strip().splitlines()
        raise EncoderFailed(f"ffmpeg could not encode the output: {reason[-1] if reason else 'no output'}")
    return result.stdout


@dataclass(frozen=True)
class AdtsAac:
    """AAC-LC in ADTS frames; consecutive encodings concatenate into one valid stream."""

    name: str = "aac"
    media_type: str = AAC_MEDIA_TYPE
    lossy: bool = True

    def encoder(self, label: ContentLabel) -> PieceEncoder:
        return lambda audio: _ffmpeg_encode(audio, ["-c:a", "aac", "-b:a", "128k", "-f", "adts"])


@dataclass(frozen=True)
class Mp3Frames:
    """MP3 frames for a stream: the first piece opens with the label's ID3 tag; no piece has a
    Xing/Info frame, whose frame count would end decoding after the first piece."""

    name: str = "mp3"
    media_type: str = MP3_MEDIA_TYPE
    lossy: bool = True

    def encoder(self, label: ContentLabel) -> PieceEncoder:
        first = True

        def encode(audio: MarkedAudio) -> bytes:
            nonlocal first
            tags = ["-id3v2_version", "0"]
            if first:
                tags = ["-id3v2_version", "4", "-metadata", "title=AI-generated speech"]
                tags += [arg for key, value in label.fields().items() for arg in ("-metadata", f"{key}={value}")]
                first = False
            return _ffmpeg_encode(
                audio,
                ["-c:a", "libmp3lame", "-q:a", "2", "-write_xing", "0", *tags, "-f", "mp3"],
            )

        return encode


@dataclass(frozen=True)
class RawPcm24k:
    """Headerless s16le mono at 24 kHz. The pipeline cannot decode headerless bytes to check
    them, so the encoder verifies the keyed mark in the very samples it writes."""

    watermark: WatermarkStack
    name: str = "pcm"
    media_type: str = PCM_MEDIA_TYPE
    lossy: bool = False  # verified here, on the samples as sent

    def encoder(self, label: ContentLabel) -> PieceEncoder:
        def encode(audio: MarkedAudio) -> bytes:
            samples = np.asarray(audio.samples, dtype=np.float64)
            if audio.sample_rate != PCM_SAMPLE_RATE:
                divisor = gcd(audio.sample_rate, PCM_SAMPLE_RATE)
                samples = resample_poly(samples, PCM_SAMPLE_RATE // divisor, audio.sample_rate // divisor)
            pcm = np.round(np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2")
            sent = pcm.astype(np.float32) / 32767.0
            try:
                verify_keyed_mark(self.watermark, sent, sample_rate=PCM_SAMPLE_RATE, payload=audio.payload)
            except WatermarkSelfCheckFailed as exc:
                raise WatermarkSelfCheckFailed(f"the keyed mark does not survive the 24 kHz pcm output: {exc}") from exc
            return pcm.tobytes()

        return encode


def whole_encoding(service: SynthesisService, response_format: str, *, watermark: WatermarkStack) -> OutputEncoding:
    if response_format == "pcm":
        return RawPcm24k(watermark=watermark)
    if response_format == "aac":
        return AdtsAac()
    return service.file_encoding(LABELLED_FILES[response_format])


def stream_encoding(response_format: str, *, watermark: WatermarkStack) -> OutputEncoding:
    if response_format == "pcm":
        return RawPcm24k(watermark=watermark)
    if response_format == "wav":
        return WavStream()
    if response_format == "aac":
        return AdtsAac()
    if response_format == "mp3":
        return Mp3Frames()
    raise StreamFormatUnsupported(
        f"{response_format} cannot be streamed (it needs the whole file); streamed formats: {', '.join(STREAMED_FORMATS)}"
    )
