"""Signed C2PA manifests on outputs: what they say, that they validate, that edits show, and
that the gateway refuses to start with credentials that would not sign."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import json
import time

import c2pa
import mutagen
import mutagen.flac
import pytest
import soundfile
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from engine.interface import EngineAudio
from gateway.audio_io import decode_audio, sniff_container
from gateway.components import build_manifest_signer
from gateway.dependencies import gateway_of
from gateway.settings import Settings, SettingsError, load_settings
from gateway.synthesis.labelling import OUTPUT_FORMATS, ContentLabel, encode_labelled
from gateway.synthesis.marked import mark_output
from gateway.synthesis.provenance import (
    LABEL_ASSERTION,
    SIGNABLE_MEDIA_TYPES,
    SOFT_BINDING_ALG,
    TRAINED_ALGORITHMIC_MEDIA,
    ManifestSigner,
    generate_dev_chain,
    read_manifest,
    validation_failures,
)
from gateway.synthesis.steps import check_encoded_mark, payload_for
from tests.gateway.conftest import synthesis_replaced
from tests.gateway.synthesis_fixtures import (
    audit_events,
    synthesize,
)

LABEL = ContentLabel(
    provider="Example Voice Ltd",
    system="clonegate",
    system_version="0.1.0",
    created_at=dt.datetime(2026, 11, 22, 12, 30, tzinfo=dt.UTC),
    content_id="clonegate:42",
)
PAYLOAD = payload_for(42)


@pytest.fixture(scope="module")
def chain():
    return generate_dev_chain()


@pytest.fixture(scope="module")
def signer(chain) -> ManifestSigner:
    return ManifestSigner(certificate_chain_pem=chain.chain_pem, private_key_pem=chain.key_pem)


@pytest.fixture(scope="module")
def marked(speech_dir, loaded_models):
    """Four seconds of real speech through the real watermark stack (the payload needs 3 s)."""
    samples, rate = soundfile.read(sorted(speech_dir.glob("en_*.wav"))[0], dtype="float32")
    return mark_output(
        loaded_models.watermark, EngineAudio(samples=samples[: 4 * rate], sample_rate=rate), payload=PAYLOAD
    )


@pytest.fixture(scope="module")
def outputs(marked, signer) -> dict[str, bytes]:
    return {name: encode_labelled(marked, output_format=name, label=LABEL, signer=signer) for name in OUTPUT_FORMATS}


def active_manifest(body: bytes, media_type: str) -> dict:
    with read_manifest(body, media_type=media_type) as reader:
        return reader.get_active_manifest()


def assertion(manifest: dict, label: str) -> dict:
    return next(item["data"] for item in manifest["assertions"] if item["label"] == label)


def self_signed_leaf() -> tuple[bytes, bytes]:
    """A leaf with every extension c2pa wants, signed by its own key instead of a CA."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "self-signed signer")])
    now = dt.datetime.now(dt.UTC)
    leaf = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return leaf.public_bytes(serialization.Encoding.PEM), key_pem


def c2pa_files(tmp_path, chain_pem: bytes, key_pem: bytes) -> dict[str, object]:
    (tmp_path / "c2pa-chain.pem").write_bytes(chain_pem)
    (tmp_path / "c2pa-signing.key").write_bytes(key_pem)
    return {
        "c2pa_certificate_chain_file": tmp_path / "c2pa-chain.pem",
        "c2pa_signing_key_file": tmp_path / "c2pa-signing.key",
    }


# What the manifest says


def test_wav_manifest_says_ai_generated_by_clonegate_and_binds_the_watermark(outputs):
    manifest = active_manifest(outputs["wav"], "audio/wav")
    assert {"name": "clonegate", "version": "0.1.0"}.items() <= manifest["claim_generator_info"][0].items()
    (created,) = assertion(manifest, "c2pa.actions.v2")["actions"]
    assert created["action"] == "c2pa.created"
    assert created["digitalSourceType"] == TRAINED_ALGORITHMIC_MEDIA
    assert assertion(manifest, LABEL_ASSERTION) == LABEL.fields()
    binding = assertion(manifest, "c2pa.soft-binding")
    assert binding["alg"] == SOFT_BINDING_ALG
    assert [block["value"] for block in binding["blocks"]] == [PAYLOAD.hex()]


@pytest.mark.parametrize("output_format", ["wav", "flac", "mp3"])
def test_signature_validates_and_is_trusted_with_the_ca_as_anchor(outputs, chain, output_format):
    body, media_type = outputs[output_format], OUTPUT_FORMATS[output_format].media_type
    # Without our CA, a reader can only say it does not know the signer; nothing else fails.
    assert validation_failures(body, media_type=media_type) == {"signingCredential.untrusted"}
    assert validation_failures(body, media_type=media_type, trust_anchors_pem=chain.ca_pem) == set()
    with read_manifest(body, media_type=media_type, trust_anchors_pem=chain.ca_pem) as reader:
        assert reader.get_validation_state() == "Trusted"


def test_another_ca_does_not_make_the_signer_trusted(outputs):
    stranger = generate_dev_chain(organization="someone else")
    failures = validation_failures(outputs["wav"], media_type="audio/wav", trust_anchors_pem=stranger.ca_pem)
    assert failures == {"signingCredential.untrusted"}


def test_signable_media_types_are_exactly_those_c2pa_can_embed_among_our_outputs():
    supported = set(c2pa.Builder.get_supported_mime_types())
    ours = {spec.media_type for spec in OUTPUT_FORMATS.values()}
    assert ours & supported == SIGNABLE_MEDIA_TYPES
    assert "audio/ogg" not in SIGNABLE_MEDIA_TYPES


# Signed outputs stay usable: they decode, carry their native tags and their mark


@pytest.mark.parametrize("output_format", ["wav", "flac", "mp3"])
def test_signed_output_decodes_and_keeps_its_mark(outputs, marked, loaded_models, output_format):
    body = outputs[output_format]
    decoded = decode_audio(body)
    assert abs(decoded.duration_seconds - 4.0) < 0.1
    samples, _ = soundfile.read(io.BytesIO(body), dtype="float32")
    assert abs(len(samples) - len(marked.samples)) < 0.1 * marked.sample_rate
    keyed = loaded_models.watermark.detect(decoded.samples, sample_rate=decoded.sample_rate).scheme("keyed")
    assert keyed.payload_verified and keyed.payload == PAYLOAD
    check_encoded_mark(loaded_models.watermark, body, encoding=output_format, payload=PAYLOAD)


def test_signed_wav_keeps_its_info_chunk(outputs):
    with soundfile.SoundFile(io.BytesIO(outputs["wav"])) as wav:
        assert wav.artist == "Example Voice Ltd"
        assert json.loads(wav.comment) == LABEL.fields()


def test_signed_flac_keeps_its_vorbis_comments(outputs):
    body = outputs["flac"]
    # c2pa puts the manifest in an ID3v2 tag in front of the FLAC stream (as in MP3); libFLAC,
    # libsndfile and ffmpeg skip it, mutagen's guesser takes it for MP3, so name the format.
    assert body[:3] == b"ID3" and b"fLaC" in body[:16_384]
    tags = mutagen.flac.FLAC(io.BytesIO(body))
    assert tags["AI_GENERATED"] == ["true"] and tags["CONTENT_ID"] == ["clonegate:42"]
    with soundfile.SoundFile(io.BytesIO(body)) as flac:
        assert flac.format == "FLAC" and flac.artist == "Example Voice Ltd"
    assert sniff_container(body) == "flac" and sniff_container(outputs["mp3"]) == "mp3"


def test_signed_mp3_keeps_its_id3_frames(outputs):
    tags = mutagen.File(io.BytesIO(outputs["mp3"])).tags
    assert tags["TXXX:AI_GENERATED"].text == ["true"]
    assert tags["TXXX:CONTENT_ID"].text == ["clonegate:42"]
    assert json.loads(tags["COMM::eng"].text[0])["content_id"] == "clonegate:42"


def test_ogg_output_has_native_tags_and_no_manifest(outputs, marked):
    body = outputs["ogg"]
    tags = mutagen.File(io.BytesIO(body))
    assert tags["AI_GENERATED"] == ["true"] and tags["CONTENT_ID"] == ["clonegate:42"]
    assert b"c2pa" not in body  # no JUMBF box anywhere: the file is exactly what was encoded
    with pytest.raises(c2pa.C2paError):
        read_manifest(body, media_type="audio/ogg")


# Edits after signing show


def flip_bytes(body: bytes, at: int) -> bytes:
    edited = bytearray(body)
    for offset in range(at, at + 8):
        edited[offset] ^= 0x55
    return bytes(edited)


@pytest.mark.parametrize("output_format", ["wav", "flac", "mp3"])
def test_detects_audio_edited_after_signing(outputs, output_format):
    body, media_type = outputs[output_format], OUTPUT_FORMATS[output_format].media_type
    # Two thirds in is audio data in every container here: the manifest sits in a RIFF chunk
    # after the data (WAV) or in a metadata block / ID3 frame before it (FLAC, MP3).
    edited = flip_bytes(body, len(body) * 2 // 3)
    assert "assertion.dataHash.mismatch" in validation_failures(edited, media_type=media_type)


def test_detects_label_edited_after_signing(outputs):
    """The native tags are inside what the manifest hashes: a rewritten provider is caught."""
    body = outputs["wav"]
    forged = body.replace(b"Example Voice Ltd", b"Trusted Human Ltd")
    assert forged != body
    assert "assertion.dataHash.mismatch" in validation_failures(forged, media_type="audio/wav")


def test_detects_manifest_moved_to_another_output(outputs, signer, marked):
    """A manifest cut from one signed file and pasted over another's does not validate there."""
    other = encode_labelled(
        marked, output_format="wav", label=dataclasses.replace(LABEL, content_id="clonegate:43"), signer=signer
    )
    manifest_at = outputs["wav"].rfind(b"C2PA")
    other_at = other.rfind(b"C2PA")
    assert manifest_at > 0 and other_at > 0
    transplanted = other[:other_at] + outputs["wav"][manifest_at:]
    assert "assertion.dataHash.mismatch" in validation_failures(transplanted, media_type="audio/wav")


# Start-up refuses credentials that would not sign, or would prove nothing


def test_refuses_self_signed_leaf_at_start_up(tmp_path):
    chain_pem, key_pem = self_signed_leaf()
    settings = Settings(mode="dev", data_dir=tmp_path, **c2pa_files(tmp_path, chain_pem, key_pem))
    with pytest.raises(SettingsError, match=r"CLONEGATE_C2PA_CERTIFICATE_CHAIN_FILE.*self-signed"):
        build_manifest_signer(settings)


@pytest.mark.parametrize(
    "problem", ["key of another leaf", "leaf without its CA", "CA that did not issue it", "not PEM"]
)
def test_refuses_unusable_credentials_at_start_up(tmp_path, chain, problem):
    other = generate_dev_chain()
    leaf_pem = chain.chain_pem[: len(chain.chain_pem) - len(chain.ca_pem)]
    chain_pem, key_pem = {
        "key of another leaf": (chain.chain_pem, other.key_pem),
        "leaf without its CA": (leaf_pem, chain.key_pem),
        "CA that did not issue it": (leaf_pem + other.ca_pem, chain.key_pem),
        "not PEM": (b"not a certificate", chain.key_pem),
    }[problem]
    settings = Settings(mode="dev", data_dir=tmp_path, **c2pa_files(tmp_path, chain_pem, key_pem))
    with pytest.raises(SettingsError, match="CLONEGATE_C2PA_CERTIFICATE_CHAIN_FILE"):
        build_manifest_signer(settings)


def test_configured_chain_signs_and_validates_against_its_ca(tmp_path, chain, marked):
    settings = Settings(mode="dev", data_dir=tmp_path, **c2pa_files(tmp_path, chain.chain_pem, chain.key_pem))
    signer = build_manifest_signer(settings)
    assert signer.trust_anchor_pem == chain.ca_pem
    body = encode_labelled(marked, output_format="wav", label=LABEL, signer=signer)
    assert validation_failures(body, media_type="audio/wav", trust_anchors_pem=chain.ca_pem) == set()


def test_prod_refuses_to_start_without_the_c2pa_key_file(tmp_path):
    with pytest.raises(SettingsError, match="CLONEGATE_C2PA_SIGNING_KEY_FILE must name a key file in prod"):
        load_settings(
            mode="prod",
            data_dir=tmp_path,
            jwt_algorithms=["RS256"],
            jwt_secret="x" * 40,
            jwt_jwks_url="https://idp.example/jwks",
            jwt_issuer="https://idp.example",
        )


def test_prod_refuses_to_start_without_the_certificate_chain(tmp_path, chain):
    files = c2pa_files(tmp_path, chain.chain_pem, chain.key_pem)
    prod = Settings.model_construct(
        **{
            **Settings(data_dir=tmp_path).model_dump(),
            "mode": "prod",
            "c2pa_signing_key_file": files["c2pa_signing_key_file"],
        }
    )
    with pytest.raises(
        SettingsError, match="CLONEGATE_C2PA_CERTIFICATE_CHAIN_FILE must name a certificate chain file in prod"
    ):
        build_manifest_signer(prod)


def test_dev_refuses_a_key_file_without_its_chain(tmp_path, chain):
    files = c2pa_files(tmp_path, chain.chain_pem, chain.key_pem)
    settings = Settings(mode="dev", data_dir=tmp_path, c2pa_signing_key_file=files["c2pa_signing_key_file"])
    with pytest.raises(SettingsError, match="CLONEGATE_C2PA_CERTIFICATE_CHAIN_FILE"):
        build_manifest_signer(settings)


# Through the gateway


def test_released_wav_manifest_points_at_the_watermark_and_audit_record(gateway, client_token):
    client, app, voice = gateway
    response = synthesize(client, client_token, voice)
    assert response.status_code == 200, response.text
    manifest = active_manifest(response.content, "audio/wav")
    binding = assertion(manifest, "c2pa.soft-binding")
    assert [block["value"] for block in binding["blocks"]] == [response.headers["x-clonegate-watermark-id"]]
    label = assertion(manifest, LABEL_ASSERTION)
    assert label["content_id"] == f"clonegate:{response.headers['x-clonegate-audit-id']}"
    assert label["ai_generated"] == "true"
    anchor = gateway_of(app).components.signer.trust_anchor_pem
    assert validation_failures(response.content, media_type="audio/wav", trust_anchors_pem=anchor) == set()


def test_expired_signing_certificate_fails_closed(gateway, client_token):
    """A certificate that expires while the gateway runs stops releases; it never downgrades
    them to unsigned files."""
    client, app, voice = gateway
    short_lived = generate_dev_chain(valid_for=dt.timedelta(seconds=2))
    signer = ManifestSigner(certificate_chain_pem=short_lived.chain_pem, private_key_pem=short_lived.key_pem)
    time.sleep(max(0.0, (signer.not_valid_after - dt.datetime.now(dt.UTC)).total_seconds()) + 1.0)
    with synthesis_replaced(app, signer=signer):
        response = synthesize(client, client_token, voice)
    assert response.status_code == 503
    assert response.json()["error"] == "provenance_signing_failed"
    assert not response.headers["content-type"].startswith("audio/")
    assert audit_events(app)[-1][1].reason == "provenance_signing_failed"
