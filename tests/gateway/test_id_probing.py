"""Probing for identifiers: an id the caller may not see answers exactly like an id that does not
exist (status, error code, detail, headers that matter), and names no id, per route family.

One ready gateway (engine warm, cohort seeded) with a voice of `owner-1` granted to tenant `acme`
(the `gateway` fixture of tests/gateway/conftest.py); the prober is another owner, or a client of another tenant.
"""

from __future__ import annotations

import numpy as np
import pytest

from gateway.dependencies import gateway_of
from tests.gateway.conftest import bearer
from tests.gateway.speech import wav_bytes
from tests.gateway.synthesis_fixtures import OWNER_ISSUER_SUB, TENANT, grant_voice, read_clip, synthesize

pytestmark = pytest.mark.slow

UNKNOWN_ID = "0123456789abcdef" * 2


def _same_answer(seen, unknown, *, hidden: str) -> None:
    """Both answers alike in everything a prober can compare, and the hidden id not in either."""
    assert seen.status_code == unknown.status_code == 404, (seen.text, unknown.text)
    assert seen.json() == unknown.json()
    assert seen.headers.get("content-type") == unknown.headers.get("content-type")
    assert "x-clonegate-audit-id" not in seen.headers and "x-clonegate-audit-id" not in unknown.headers
    assert hidden not in seen.text and UNKNOWN_ID not in unknown.text


@pytest.fixture
def tokens(hs256_token):
    def make(sub: str, role: str, **claims) -> dict[str, str]:
        return bearer(hs256_token(sub=sub, role=[role], **claims))

    return make


def test_voice_id_probing_by_synthesis_from_another_tenant(gateway, tokens):
    """A real voice id, granted to tenant acme, sent by a client of another tenant: the answer is
    the one an unknown id gets (no consent_missing naming the voice); no use is counted."""
    client, _, voice = gateway
    rival = tokens("rival-app", "client", tenant="rival")
    body = {"text": "Good evening and welcome.", "language": "en", "purpose": "narration", "format": "wav"}
    seen = client.post("/v1/synthesize", json={**body, "voice_id": voice.voice_id}, headers=rival)
    unknown = client.post("/v1/synthesize", json={**body, "voice_id": UNKNOWN_ID}, headers=rival)
    _same_answer(seen, unknown, hidden=voice.voice_id)
    assert seen.json()["error"] == "voice_not_found"
    # Streaming answers refusals at admission the same way.
    streamed = client.post("/v1/synthesize?stream=true", json={**body, "voice_id": voice.voice_id}, headers=rival)
    _same_answer(streamed, unknown, hidden=voice.voice_id)
    # Another owner (owner role, not the voice's owner) is no different.
    stranger = tokens("owner-2", "owner", name="Other Owner")
    _same_answer(
        client.post("/v1/synthesize", json={**body, "voice_id": voice.voice_id}, headers=stranger),
        client.post("/v1/synthesize", json={**body, "voice_id": UNKNOWN_ID}, headers=stranger),
        hidden=voice.voice_id,
    )


def test_erased_voice_id_probing_by_synthesis_from_another_tenant(gateway, tokens, speech_dir):
    """That a voice existed and was erased is not told to someone no consent named."""
    client, app, _ = gateway
    erased = grant_voice(app, sorted(speech_dir.glob("en_*.wav"))[2], issuer=gateway_of(app).settings.jwt_issuer)
    owner = tokens(OWNER_ISSUER_SUB, "owner", name="Olive Owner")
    assert client.delete(f"/v1/voices/{erased.voice_id}", headers=owner).status_code == 200
    rival = tokens("rival-app", "client", tenant="rival")
    body = {"text": "Good evening and welcome.", "language": "en", "purpose": "narration", "format": "wav"}
    _same_answer(
        client.post("/v1/synthesize", json={**body, "voice_id": erased.voice_id}, headers=rival),
        client.post("/v1/synthesize", json={**body, "voice_id": UNKNOWN_ID}, headers=rival),
        hidden=erased.voice_id,
    )
    # The grantee it was consented to still learns that it is gone.
    granted = tokens("studio-1", "client", tenant=TENANT)
    gone = client.post("/v1/synthesize", json={**body, "voice_id": erased.voice_id}, headers=granted)
    assert gone.status_code == 410 and gone.json()["error"] == "voice_erased", gone.text


def test_voice_id_probing_by_another_owner_and_tenant(gateway, tokens):
    """Every voice route: another owner's (or another tenant's client's) view of a real voice is
    the view of an unknown one, and nothing is changed."""
    client, _, voice = gateway
    stranger = tokens("owner-2", "owner", name="Other Owner")
    clip = wav_bytes(np.zeros(16000, np.float32), 16000)
    for method, path, kwargs in (
        ("GET", "/v1/voices/{}", {}),
        ("GET", "/v1/voices/{}/usage", {}),
        ("DELETE", "/v1/voices/{}", {}),
        ("POST", "/v1/voices/{}/samples", {"files": [("references", ("r.wav", clip, "audio/wav"))]}),
    ):
        seen = client.request(method, path.format(voice.voice_id), headers=stranger, **kwargs)
        unknown = client.request(method, path.format(UNKNOWN_ID), headers=stranger, **kwargs)
        _same_answer(seen, unknown, hidden=voice.voice_id)
    rival = tokens("rival-app", "client", tenant="rival")
    _same_answer(
        client.get(f"/v1/voices/{voice.voice_id}", headers=rival),
        client.get(f"/v1/voices/{UNKNOWN_ID}", headers=rival),
        hidden=voice.voice_id,
    )
    owner = tokens(OWNER_ISSUER_SUB, "owner", name="Olive Owner")
    assert client.get(f"/v1/voices/{voice.voice_id}", headers=owner).json()["status"] == "active"


def test_consent_id_probing_by_another_owner(gateway, tokens):
    client, _, voice = gateway
    stranger = tokens("owner-2", "owner", name="Other Owner")
    for method, path in (("GET", "/v1/consents/{}"), ("POST", "/v1/consents/{}/revoke")):
        _same_answer(
            client.request(method, path.format(voice.consent_id), headers=stranger),
            client.request(method, path.format(UNKNOWN_ID), headers=stranger),
            hidden=voice.consent_id,
        )
    owner = tokens(OWNER_ISSUER_SUB, "owner", name="Olive Owner")
    assert client.get(f"/v1/consents/{voice.consent_id}", headers=owner).json()["revoked_at"] is None


def test_audit_id_probing_through_detection(gateway, client_token, tokens, speech_dir):
    """Audio marked by acme's request and audio whose mark names no event at all look the same
    to a client of another tenant: withheld, never "unknown" with the id."""
    client, app, voice = gateway
    released = synthesize(client, client_token, voice)
    assert released.status_code == 200, released.text
    audio, rate = read_clip(sorted(speech_dir.glob("en_*.wav"))[4], seconds=6)
    forged = gateway_of(app).components.watermark.embed(
        audio, sample_rate=rate, payload=(0x00FFFFF0).to_bytes(4, "big")
    )
    rival = tokens("rival-app", "client", tenant="rival")

    def source(data: bytes) -> dict:
        answer = client.post("/v1/detect", files={"audio": ("a.wav", data, "audio/wav")}, headers=rival)
        assert answer.status_code == 200, answer.text
        assert answer.json()["detected"] is True
        return answer.json()["source"]

    assert source(released.content) == source(wav_bytes(forged, rate))
    assert source(released.content)["status"] == "withheld"
