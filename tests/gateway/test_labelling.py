"""Outputs carry machine-readable AI labels in each container's native tags."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime

import mutagen
import mutagen.flac
import pytest
import soundfile

from engine.interface import EngineAudio
from gateway.audio_io import decode_audio
from gateway.synthesis.labelling import OUTPUT_FORMATS, ContentLabel, encode_labelled
from gateway.synthesis.marked import MarkedAudio, mark_output
from gateway.synthesis.provenance import ManifestSigner, generate_dev_chain

LABEL = ContentLabel(
    provider="Example Voice Ltd",
    system="clonegate",
    system_version="0.1.0",
    created_at=datetime(2026, 11, 22, 12, 30, tzinfo=UTC),
    content_id="audit-000042",
)


@pytest.fixture(scope="module")
def speech(speech_dir) -> EngineAudio:
    samples, rate = soundfile.read(sorted(speech_dir.glob("en_*.wav"))[0], dtype="float32")
    return EngineAudio(samples=samples[: 4 * rate], sample_rate=rate)


@pytest.fixture(scope="module")
def signer() -> ManifestSigner:
    """Every encoded output passes through the C2PA signer (tests/gateway/test_provenance.py)."""
    dev = generate_dev_chain()
    return ManifestSigner(certificate_chain_pem=dev.chain_pem, private_key_pem=dev.key_pem)


@pytest.fixture(scope="module")
def tone(speech, loaded_models) -> MarkedAudio:
    """Four seconds of real speech (the payload needs 3 s) through the real watermark stack."""
    return mark_output(loaded_models.watermark, speech, payload=b"\x00\x00\x00\x2a")


def test_engine_audio_cannot_be_encoded_for_release(speech, signer):
    with pytest.raises(TypeError, match="only marked audio"):
        encode_labelled(speech, output_format="wav", label=LABEL, signer=signer)


def test_marked_audio_is_made_only_by_the_watermark_step(speech):
    with pytest.raises(TypeError):
        MarkedAudio(object(), samples=speech.samples, sample_rate=speech.sample_rate, payload=b"1234")


@pytest.mark.parametrize("output_format", sorted(OUTPUT_FORMATS))
def test_output_decodes_back_to_the_same_length(tone, signer, output_format):
    encoded = encode_labelled(tone, output_format=output_format, label=LABEL, signer=signer)
    decoded = decode_audio(encoded)
    assert abs(decoded.duration_seconds - 4.0) < 0.1


def test_wav_carries_info_chunk_label(tone, signer):
    encoded = encode_labelled(tone, output_format="wav", label=LABEL, signer=signer)
    assert b"LIST" in encoded and b"INFO" in encoded
    with soundfile.SoundFile(io.BytesIO(encoded)) as wav:
        assert wav.artist == "Example Voice Ltd"
        assert wav.software.startswith("clonegate 0.1.0")  # libsndfile appends its own name
        assert json.loads(wav.comment) == LABEL.fields()


@pytest.mark.parametrize("output_format", ["flac", "ogg"])
def test_vorbis_comments_carry_label(tone, signer, output_format):
    encoded = encode_labelled(tone, output_format=output_format, label=LABEL, signer=signer)
    # Named, not guessed: a signed FLAC starts with the ID3v2 tag holding its C2PA manifest.
    tags = mutagen.flac.FLAC(io.BytesIO(encoded)) if output_format == "flac" else mutagen.File(io.BytesIO(encoded))
    assert tags["AI_GENERATED"] == ["true"]
    assert tags["CONTENT_ID"] == ["audit-000042"]
    assert tags["PROVIDER"] == ["Example Voice Ltd"]
    assert tags["CREATED"] == ["2026-11-22T12:30:00+00:00"]


def test_mp3_carries_id3_label(tone, signer):
    encoded = encode_labelled(tone, output_format="mp3", label=LABEL, signer=signer)
    tags = mutagen.File(io.BytesIO(encoded)).tags
    assert tags["TXXX:AI_GENERATED"].text == ["true"]
    assert tags["TXXX:CONTENT_ID"].text == ["audit-000042"]
    assert tags["TSSE"].text == ["clonegate 0.1.0"]
    assert json.loads(tags["COMM::eng"].text[0])["content_id"] == "audit-000042"
