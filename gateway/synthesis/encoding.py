"""How released audio becomes bytes, kept apart from the pipeline that decides what is released.

An `OutputEncoding` names a media type and makes, for one request, the function that turns each
released piece of marked audio into the bytes sent for it: the whole file for a whole request,
the next part of the stream for a streamed one. The pipeline hands it only `MarkedAudio`, after
the watermark's self-check and the output screening, and when the encoding is lossy it decodes
the bytes and verifies the mark before it releases them. Another client of the synthesis service
(an API with other format names) brings its own encodings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from gateway.errors import StreamFormatUnsupported
from gateway.synthesis.labelling import OUTPUT_FORMATS, ContentLabel, encode_labelled
from gateway.synthesis.marked import MarkedAudio
from gateway.synthesis.provenance import ManifestSigner
from gateway.synthesis.wav_stream import MEDIA_TYPE as WAV_STREAM_MEDIA_TYPE
from gateway.synthesis.wav_stream import pcm16, wav_stream_header

PieceEncoder = Callable[[MarkedAudio], bytes]


class OutputEncoding(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def media_type(self) -> str: ...

    @property
    def lossy(self) -> bool:
        """The pipeline then decodes each encoded piece and verifies the mark in it."""
        ...

    def encoder(self, label: ContentLabel) -> PieceEncoder:
        """A function for one request, called once per released piece, in order."""
        ...


@dataclass(frozen=True)
class LabelledFile:
    """A whole file in one of `OUTPUT_FORMATS`, tagged with the label and signed (C2PA) where the
    container allows (gateway/synthesis/labelling.py)."""

    name: str
    signer: ManifestSigner

    @property
    def media_type(self) -> str:
        return OUTPUT_FORMATS[self.name].media_type

    @property
    def lossy(self) -> bool:
        return OUTPUT_FORMATS[self.name].lossy

    def encoder(self, label: ContentLabel) -> PieceEncoder:
        return lambda audio: encode_labelled(audio, output_format=self.name, label=label, signer=self.signer)


@dataclass(frozen=True)
class WavStream:
    """A WAV header of unknown length with the label, then 16-bit PCM of each piece
    (gateway/synthesis/wav_stream.py)."""

    name: str = "wav"
    media_type: str = WAV_STREAM_MEDIA_TYPE
    lossy: bool = False

    def encoder(self, label: ContentLabel) -> PieceEncoder:
        first = True

        def encode(audio: MarkedAudio) -> bytes:
            nonlocal first
            body = pcm16(audio)
            if first:
                body = wav_stream_header(sample_rate=audio.sample_rate, label=label) + body
                first = False
            return body

        return encode


def labelled_file(output_format: str, *, signer: ManifestSigner) -> LabelledFile:
    if output_format not in OUTPUT_FORMATS:
        raise ValueError(f"unknown output format {output_format!r}")
    return LabelledFile(name=output_format, signer=signer)


def wav_stream(output_format: str) -> WavStream:
    """`?stream=true` sends WAV: a growing PCM stream needs no whole-file encoder or index."""
    if output_format != "wav":
        raise StreamFormatUnsupported(f"streamed output is wav; {output_format} needs the whole file")
    return WavStream()
