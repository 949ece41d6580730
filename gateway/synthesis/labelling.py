"""Encoding released audio into its output container with machine-readable AI labels.

Every output says, in the container's native tags, that it is AI-generated, who provided it,
which system and version made it, when, and its content id (the audit record it points at):
WAV LIST/INFO chunks and FLAC/Ogg Vorbis comments through libsndfile's string fields, plus
custom Vorbis comments and ID3 frames (MP3) through mutagen. Where c2pa can embed one (WAV,
FLAC, MP3: `gateway.synthesis.provenance.SIGNABLE_MEDIA_TYPES`), the tagged file then gets a signed C2PA
manifest that repeats the label and binds the watermark; Ogg Opus keeps its native tags only.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from datetime import datetime
from math import gcd
from typing import TYPE_CHECKING

import mutagen.flac
import mutagen.id3
import mutagen.oggopus
import numpy as np
import soundfile
from scipy.signal import resample_poly

from gateway.synthesis.marked import MarkedAudio

if TYPE_CHECKING:  # provenance imports ContentLabel from here
    from gateway.synthesis.provenance import ManifestSigner

OPUS_SAMPLE_RATE = 48_000  # Opus encodes only at 8/12/16/24/48 kHz


@dataclass(frozen=True)
class OutputFormat:
    name: str
    container: str
    subtype: str
    media_type: str
    # libsndfile's 0 (best quality) .. 1 (smallest) for lossy codecs; None for lossless ones.
    # Chosen so the keyed payload survives the encoding (the pipeline checks it on every output).
    compression_level: float | None = None

    @property
    def lossy(self) -> bool:
        return self.compression_level is not None


OUTPUT_FORMATS = {
    "wav": OutputFormat("wav", "WAV", "PCM_16", "audio/wav"),
    "flac": OutputFormat("flac", "FLAC", "PCM_16", "audio/flac"),
    "mp3": OutputFormat("mp3", "MP3", "MPEG_LAYER_III", "audio/mpeg", compression_level=0.0),
    "ogg": OutputFormat("ogg", "OGG", "OPUS", "audio/ogg", compression_level=0.5),
}


@dataclass(frozen=True)
class ContentLabel:
    """What the output says about itself."""

    provider: str
    system: str
    system_version: str
    created_at: datetime
    content_id: str

    def fields(self) -> dict[str, str]:
        return {
            "ai_generated": "true",
            "provider": self.provider,
            "system": self.system,
            "system_version": self.system_version,
            "created": self.created_at.isoformat(),
            "content_id": self.content_id,
        }

    def summary(self) -> str:
        return json.dumps(self.fields(), sort_keys=True)


def encode_labelled(audio: MarkedAudio, *, output_format: str, label: ContentLabel, signer: ManifestSigner) -> bytes:
    """Marked audio in the requested container, tagged with the label and, where the container
    allows, signed with a C2PA manifest whose soft binding is the audio's watermark id.

    Only `MarkedAudio` is accepted: engine output cannot be turned into bytes before it passed
    the watermark step and its self-check. A signing failure raises `ProvenanceSigningFailed`:
    there is no unsigned fallback for a format that is signed.
    """
    if not isinstance(audio, MarkedAudio):
        raise TypeError(f"only marked audio can be encoded for release, not {type(audio).__name__}")
    spec = OUTPUT_FORMATS[output_format]
    samples, sample_rate = np.asarray(audio.samples), audio.sample_rate
    if spec.container == "OGG" and sample_rate != OPUS_SAMPLE_RATE:
        divisor = gcd(sample_rate, OPUS_SAMPLE_RATE)
        samples = resample_poly(samples, OPUS_SAMPLE_RATE // divisor, sample_rate // divisor).astype(np.float32)
        sample_rate = OPUS_SAMPLE_RATE
    buffer = io.BytesIO()
    with soundfile.SoundFile(
        buffer,
        "w",
        samplerate=sample_rate,
        channels=1,
        format=spec.container,
        subtype=spec.subtype,
        compression_level=spec.compression_level,
    ) as output:
        if spec.container != "MP3":  # libsndfile has no string fields for MP3; ID3 is added below
            output.title = "AI-generated speech"
            output.artist = label.provider
            output.software = f"{label.system} {label.system_version}"
            output.date = label.created_at.isoformat()
            output.comment = label.summary()
            output.copyright = f"AI-generated; content id {label.content_id}"
        output.write(np.clip(samples, -1.0, 1.0))
    buffer.seek(0)
    if spec.container in ("FLAC", "OGG"):
        _add_vorbis_fields(buffer, spec.container, label)
    elif spec.container == "MP3":
        _add_id3_frames(buffer, label)
    if not signer.can_sign(spec.media_type):
        return buffer.getvalue()  # Ogg: c2pa has no handler, the native tags are the label
    # Signed last: the manifest's hash covers the file as released, tags included.
    return signer.sign(buffer.getvalue(), media_type=spec.media_type, label=label, watermark_id=audio.watermark_id)


def _add_vorbis_fields(buffer: io.BytesIO, container: str, label: ContentLabel) -> None:
    tagged = mutagen.flac.FLAC(buffer) if container == "FLAC" else mutagen.oggopus.OggOpus(buffer)
    for key, value in label.fields().items():
        tagged[key.upper()] = value
    buffer.seek(0)
    tagged.save(buffer)


def _add_id3_frames(buffer: io.BytesIO, label: ContentLabel) -> None:
    tags = mutagen.id3.ID3()
    tags.add(mutagen.id3.TIT2(encoding=3, text="AI-generated speech"))
    tags.add(mutagen.id3.TPE1(encoding=3, text=label.provider))
    tags.add(mutagen.id3.TSSE(encoding=3, text=f"{label.system} {label.system_version}"))
    tags.add(mutagen.id3.TDRC(encoding=3, text=label.created_at.strftime("%Y-%m-%dT%H:%M:%S")))
    tags.add(mutagen.id3.COMM(encoding=3, lang="eng", desc="", text=label.summary()))
    for key, value in label.fields().items():
        tags.add(mutagen.id3.TXXX(encoding=3, desc=key.upper(), text=value))
    tags.save(buffer)
