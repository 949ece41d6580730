"""C2PA manifests on released audio, signed with the gateway's certificate.

The manifest says the output was created by a trained algorithm (`c2pa.actions`), repeats the
content label (provider, system, version, creation time, content id) in a clonegate assertion,
and carries a `c2pa.soft-binding` assertion whose value is the keyed watermark's payload: the
same identifier the mark in the audio carries, so a reader can go from the manifest to the mark
and the audit record, and from a stripped file's mark back to its record.

c2pa can embed a manifest only in some containers; `SIGNABLE_MEDIA_TYPES` lists those among our
outputs. The others keep their native tags only (gateway/synthesis/labelling.py decides, explicitly).
"""

from __future__ import annotations

import datetime as dt
import io
import itertools
from dataclasses import dataclass

import c2pa
import numpy as np
import soundfile
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gateway.dev_material import DEV_C2PA_ORGANIZATION
from gateway.errors import ProvenanceSigningFailed
from gateway.synthesis.labelling import ContentLabel

# c2pa-python 0.38 embeds manifests in WAV (a `C2PA` RIFF chunk), MP3 (an ID3v2 GEOB frame) and
# FLAC (the same, in an ID3v2 tag before `fLaC`). It has no Ogg handler: Ogg Opus outputs carry
# their native Vorbis comments only. tests/gateway/test_provenance.py keeps this set honest.
SIGNABLE_MEDIA_TYPES = frozenset({"audio/wav", "audio/flac", "audio/mpeg"})

TRAINED_ALGORITHMIC_MEDIA = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
# Not on the C2PA soft-binding algorithm list: an entity-specific name, as the spec allows.
SOFT_BINDING_ALG = "org.clonegate.keyed-watermark.1"
LABEL_ASSERTION = "org.clonegate.content-label"

# The one validation failure a reader reports for a correctly signed output when it has not been
# given our CA as a trust anchor; anything else means the manifest or the file is wrong.
UNTRUSTED_ONLY = {"signingCredential.untrusted"}


class SigningCredentialInvalid(ValueError):
    """The certificate chain or key cannot sign C2PA manifests; the message says why."""


@dataclass(frozen=True)
class DevChain:
    """A local CA and an ES256 leaf it issued, as PEM (chain = leaf then CA)."""

    chain_pem: bytes
    key_pem: bytes
    ca_pem: bytes


class ManifestSigner:
    """Signs outputs with one certificate chain (leaf first, then its CA) and the leaf's EC P-256
    key. The constructor refuses a chain c2pa would not accept and proves it by signing and
    reading back a probe, so a gateway that started can sign."""

    def __init__(self, *, certificate_chain_pem: bytes, private_key_pem: bytes) -> None:
        certificates, key = _check_credentials(certificate_chain_pem, private_key_pem)
        self.trust_anchor_pem = certificates[-1].public_bytes(serialization.Encoding.PEM)
        self.not_valid_after = certificates[0].not_valid_after_utc
        # c2pa reads only PKCS#8 ("PRIVATE KEY"); openssl's EC tools write SEC1 by default.
        pkcs8_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        try:
            self._signer = c2pa.Signer.from_info(
                c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, certificate_chain_pem, pkcs8_pem, None)
            )
        except c2pa.C2paError as exc:
            raise SigningCredentialInvalid(f"c2pa refuses the credentials: {exc}") from exc
        self._self_check()

    @staticmethod
    def can_sign(media_type: str) -> bool:
        return media_type in SIGNABLE_MEDIA_TYPES

    def sign(self, body: bytes, *, media_type: str, label: ContentLabel, watermark_id: str) -> bytes:
        """`body` with an embedded, signed manifest; `ProvenanceSigningFailed` otherwise."""
        if not self.can_sign(media_type):
            raise ProvenanceSigningFailed(f"no C2PA manifest can be embedded in {media_type}")
        signed = io.BytesIO()
        try:
            with c2pa.Builder(manifest_definition(label=label, watermark_id=watermark_id)) as builder:
                builder.sign(self._signer, media_type, io.BytesIO(body), signed)
        except c2pa.C2paError as exc:  # e.g. the certificate expired since start-up
            raise ProvenanceSigningFailed(f"the C2PA manifest could not be signed: {exc}") from exc
        return signed.getvalue()

    def _self_check(self) -> None:
        probe = io.BytesIO()
        soundfile.write(probe, np.zeros(1600, np.float32), 16_000, format="WAV", subtype="PCM_16")
        label = ContentLabel(
            provider="start-up self-check",
            system="clonegate",
            system_version="0",
            created_at=dt.datetime.now(dt.UTC),
            content_id="self-check",
        )
        try:
            signed = self.sign(probe.getvalue(), media_type="audio/wav", label=label, watermark_id="00")
        except ProvenanceSigningFailed as exc:
            raise SigningCredentialInvalid(str(exc)) from exc
        failures = validation_failures(signed, media_type="audio/wav") - UNTRUSTED_ONLY
        if failures:
            raise SigningCredentialInvalid(f"a probe signed at start-up does not validate: {sorted(failures)}")


def manifest_definition(*, label: ContentLabel, watermark_id: str) -> dict:
    return {
        "claim_generator_info": [{"name": label.system, "version": label.system_version}],
        "title": "AI-generated speech",
        "assertions": [
            {
                "label": "c2pa.actions",
                "data": {
                    "actions": [
                        {
                            "action": "c2pa.created",
                            "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA,
                            "softwareAgent": {"name": label.system, "version": label.system_version},
                            "when": label.created_at.isoformat(),
                        }
                    ]
                },
            },
            {"label": LABEL_ASSERTION, "data": label.fields()},
            # Empty scope: the keyed mark repeats over the whole output. `pad` is required by the
            # schema (zero bytes reserved for in-place updates); we never update in place.
            {
                "label": "c2pa.soft-binding",
                "data": {
                    "alg": SOFT_BINDING_ALG,
                    "name": "clonegate keyed watermark payload (the audit record's identifier), hex",
                    "blocks": [{"scope": {}, "value": watermark_id}],
                    "pad": [],
                },
            },
        ],
    }


def read_manifest(body: bytes, *, media_type: str, trust_anchors_pem: bytes | None = None) -> c2pa.Reader:
    """A reader over `body`'s manifest; with anchors, the chain is checked against them."""
    context = None
    if trust_anchors_pem is not None:
        context = c2pa.Context.from_dict(
            {"verify": {"verify_trust": True}, "trust": {"trust_anchors": trust_anchors_pem.decode()}}
        )
    return c2pa.Reader(media_type, io.BytesIO(body), context=context)


def validation_failures(body: bytes, *, media_type: str, trust_anchors_pem: bytes | None = None) -> set[str]:
    """The codes of every validation failure of the active manifest (empty when it validates)."""
    with read_manifest(body, media_type=media_type, trust_anchors_pem=trust_anchors_pem) as reader:
        results = reader.get_validation_results() or {}
    return {entry["code"] for entry in results.get("activeManifest", {}).get("failure", [])}


def _check_credentials(chain_pem: bytes, key_pem: bytes) -> tuple[list[x509.Certificate], ec.EllipticCurvePrivateKey]:
    """Refuse, naming the problem, what c2pa would refuse later or what proves nothing."""
    try:
        certificates = x509.load_pem_x509_certificates(chain_pem)
    except ValueError as exc:
        raise SigningCredentialInvalid(f"the certificate chain is not PEM certificates: {exc}") from exc
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise SigningCredentialInvalid(f"the private key is not an unencrypted PEM key: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise SigningCredentialInvalid("the private key must be EC P-256 (ES256)")
    leaf = certificates[0]
    if leaf.public_key() != key.public_key():
        raise SigningCredentialInvalid("the private key does not belong to the first (leaf) certificate")
    if _issued_by(leaf, leaf):
        # A reader can only tie a self-signed leaf to itself; C2PA wants a leaf issued by a CA.
        raise SigningCredentialInvalid(
            "the leaf certificate is self-signed; use a leaf issued by a CA (see docs/operations.md, 'C2PA manifest')"
        )
    if len(certificates) < 2:
        raise SigningCredentialInvalid("the chain has only the leaf; append the issuing CA certificate")
    for child, issuer in itertools.pairwise(certificates):
        if not _issued_by(child, issuer):
            raise SigningCredentialInvalid(
                f"{child.subject.rfc4514_string()} is not issued by the next "
                f"certificate in the chain ({issuer.subject.rfc4514_string()})"
            )
    now = dt.datetime.now(dt.UTC)
    if not leaf.not_valid_before_utc <= now < leaf.not_valid_after_utc:
        raise SigningCredentialInvalid(
            f"the leaf certificate is not valid now (valid "
            f"{leaf.not_valid_before_utc:%Y-%m-%d} to {leaf.not_valid_after_utc:%Y-%m-%d})"
        )
    return certificates, key


def _issued_by(child: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        child.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def generate_dev_chain(
    *, valid_for: dt.timedelta = dt.timedelta(days=30), organization: str = DEV_C2PA_ORGANIZATION
) -> DevChain:
    """A throwaway local CA and ES256 leaf, in memory: what dev mode signs with, and what tests
    use. The leaf has what c2pa requires: digitalSignature, an EKU, SKI and AKI."""
    now = dt.datetime.now(dt.UTC)
    start, end = now - dt.timedelta(minutes=5), now + valid_for
    ca_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = _name(f"{organization} CA", organization)
    ca = (
        _certificate(ca_name, ca_name, ca_key.public_key(), start, end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(key_cert_sign=True, crl_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    leaf = (
        _certificate(_name(f"{organization} signer", organization), ca_name, leaf_key.public_key(), start, end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(digital_signature=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_pem = ca.public_bytes(serialization.Encoding.PEM)
    key_pem = leaf_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return DevChain(chain_pem=leaf.public_bytes(serialization.Encoding.PEM) + ca_pem, key_pem=key_pem, ca_pem=ca_pem)


def _name(common_name: str, organization: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
        ]
    )


def _certificate(
    subject: x509.Name, issuer: x509.Name, public_key, start: dt.datetime, end: dt.datetime
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
    )


def _key_usage(
    *, digital_signature: bool = False, key_cert_sign: bool = False, crl_sign: bool = False
) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=key_cert_sign,
        crl_sign=crl_sign,
        encipher_only=False,
        decipher_only=False,
    )
