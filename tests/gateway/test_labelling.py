"""Outputs carry machine-readable AI labels in each container's native tags."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime

import mutagen
import numpy as np
import pytest
import soundfile

from gateway.audio_io import decode_audio
from gateway.labelling import OUTPUT_FORMATS, ContentLabel, encode_labelled

LABEL = ContentLabel(
    provider="Example Voice Ltd",
    system="clonegate",
    system_version="0.1.0",
    created_at=datetime(2026, 11, 22, 12, 30, tzinfo=UTC),
    content_id="audit-000042",
)


@pytest.fixture(scope="module")
def tone() -> np.ndarray:
    t = np.arange(22050 * 2) / 22050
    return (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


@pytest.mark.parametrize("output_format", sorted(OUTPUT_FORMATS))
def test_output_decodes_back_to_the_same_length(tone, output_format):
    encoded = encode_labelled(tone, sample_rate=22050, output_format=output_format, label=LABEL)
    decoded = decode_audio(encoded)
    assert abs(decoded.duration_seconds - 2.0) < 0.1


def test_wav_carries_info_chunk_label(tone):
    encoded = encode_labelled(tone, sample_rate=22050, output_format="wav", label=LABEL)
    assert b"LIST" in encoded and b"INFO" in encoded
    with soundfile.SoundFile(io.BytesIO(encoded)) as wav:
        assert wav.artist == "Example Voice Ltd"
        assert wav.software.startswith("clonegate 0.1.0")  # libsndfile appends its own name
        assert json.loads(wav.comment) == LABEL.fields()


@pytest.mark.parametrize("output_format", ["flac", "ogg"])
def test_vorbis_comments_carry_label(tone, output_format):
    encoded = encode_labelled(tone, sample_rate=22050, output_format=output_format, label=LABEL)
    tags = mutagen.File(io.BytesIO(encoded))
    assert tags["AI_GENERATED"] == ["true"]
    assert tags["CONTENT_ID"] == ["audit-000042"]
    assert tags["PROVIDER"] == ["Example Voice Ltd"]
    assert tags["CREATED"] == ["2026-11-22T12:30:00+00:00"]


def test_mp3_carries_id3_label(tone):
    encoded = encode_labelled(tone, sample_rate=22050, output_format="mp3", label=LABEL)
    tags = mutagen.File(io.BytesIO(encoded)).tags
    assert tags["TXXX:AI_GENERATED"].text == ["true"]
    assert tags["TXXX:CONTENT_ID"].text == ["audit-000042"]
    assert tags["TSSE"].text == ["clonegate 0.1.0"]
    assert json.loads(tags["COMM::eng"].text[0])["content_id"] == "audit-000042"
