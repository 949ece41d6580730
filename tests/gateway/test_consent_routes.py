"""Consent over HTTP with real parts: Piper speech read aloud, pocketsphinx, resemblyzer, the
watermark stack and the embedded engine preparing the voice profile.

Speech checks are the slow part, so one app (a fresh SQLite database) serves the module and
each test uses its own owner; enrolled voices are made once per module.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from sqlalchemy import select

from gateway.app import create_app
from gateway.db import upgrade
from gateway.dependencies import gateway_of
from gateway.settings import Settings
from policy.consent.models import ConsentChallenge, VoiceKey, VoiceSample
from tests.gateway.conftest import bearer
from tests.gateway.speech import (
    COHORT,
    ENGLISH_COHORT,
    PHRASES,
    REFERENCE_TEXT,
    audit_events,
    denied_reasons,
    enroll,
    issue,
    owner,
    reveal,
    running_gateway,
    speak,
    spoken_wav,
    token_maker,
    wav_bytes,
)

pytestmark = pytest.mark.slow
torch.set_num_threads(1)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory, loaded_models, speech_dir):
    # The strangers below are English speakers: the cohort covers English voices (speech.py).
    yield from running_gateway(
        tmp_path_factory.mktemp("consent-routes"),
        models=loaded_models,
        speech_dir=speech_dir,
        cohort=(*COHORT, *ENGLISH_COHORT),
    )


@pytest.fixture(scope="module")
def token(gateway):
    return token_maker(gateway)


@pytest.fixture(scope="module")
def enrolled(gateway, token):
    """Joe's voice, consented to tenant acme for audiobooks, enrolled through the route."""
    headers = token(**owner("joe", "Joe Miller"))
    challenge_id, statement = issue(gateway, headers)
    consent = spoken_wav(statement)
    response = enroll(
        gateway, headers, challenge_id=challenge_id, consent=consent, references=[spoken_wav(REFERENCE_TEXT)]
    )
    assert response.status_code == 201, response.text
    return {"headers": headers, "body": response.json(), "consent_wav": consent, "statement": statement}


def test_enrolls_voice_and_records_consent(gateway, token, enrolled):
    body = enrolled["body"]
    voice_id, consent_id = body["voice_id"], body["consent_id"]
    calibration = gateway_of(gateway.app).components.speaker_calibration
    assert body["status"] == "active" and body["speaker_score"] >= calibration.consent_match
    assert body["speaker_match_probability"] > 0.5
    assert [c["consent_id"] for c in body["consents"]] == [consent_id]
    granted = [e for e in audit_events(gateway, action="consent.granted") if e["subjects"]["voice_id"] == voice_id]
    enrolled_events = [
        e for e in audit_events(gateway, action="voice.enrolled") if e["subjects"]["voice_id"] == voice_id
    ]
    assert len(granted) == 1 and len(enrolled_events) == 1
    assert granted[0]["subjects"]["consent_id"] == consent_id and granted[0]["decision"] == "allow"
    assert len(granted[0]["digests"]["reference_sha256"]) == 2  # consent recording + one reference

    listed = gateway.get("/v1/voices", headers=enrolled["headers"]).json()["voices"]
    assert [v["voice_id"] for v in listed] == [voice_id]
    assert gateway.get(f"/v1/consents/{consent_id}", headers=enrolled["headers"]).json()["grantee_id"] == "acme"
    client = token("studio-app", "client", tenant="acme")
    assert [v["voice_id"] for v in gateway.get("/v1/voices", headers=client).json()["voices"]] == [voice_id]
    seen = gateway.get(f"/v1/voices/{voice_id}", headers=client)
    assert seen.status_code == 200 and [c["consent_id"] for c in seen.json()["consents"]] == [consent_id]
    with gateway_of(gateway.app).sessions() as session:
        material = gateway_of(gateway.app).components.voices.load(session, voice_id=voice_id)
    assert material.engine_profile is not None and material.speaker_profile.shape == (256,)


def test_rejects_replayed_consent_recording(gateway, enrolled):
    """The earlier recording, sent again for a new challenge. The new challenge is given the same
    phrase, so only the replay check (d) stands between the attacker and a second voice."""
    challenge_id, statement = issue(gateway, enrolled["headers"], phrase=PHRASES[0])
    assert statement == enrolled["statement"]
    response = enroll(
        gateway,
        enrolled["headers"],
        challenge_id=challenge_id,
        consent=enrolled["consent_wav"],
        references=[spoken_wav(REFERENCE_TEXT)],
    )
    assert response.status_code == 409 and response.json()["error"] == "consent_recording_replayed", response.text
    assert denied_reasons(gateway, "joe") == ["consent_recording_replayed"]
    assert len(gateway.get("/v1/voices", headers=enrolled["headers"]).json()["voices"]) == 1


def test_rejects_statement_for_other_challenge(gateway, token):
    headers = token(**owner("mallory", "Mallory Jones"))
    challenge_id, _ = issue(gateway, headers, grantee_name="Other Studios", phrase=PHRASES[0])
    _, other_statement = issue(gateway, headers, grantee_name="Other Studios", phrase=PHRASES[1])
    response = enroll(
        gateway,
        headers,
        challenge_id=challenge_id,
        consent=spoken_wav(other_statement),
        references=[spoken_wav(REFERENCE_TEXT)],
    )
    assert response.status_code == 422 and response.json()["error"] == "consent_phrase_mismatch", response.text
    assert denied_reasons(gateway, "mallory") == ["consent_phrase_mismatch"]
    assert gateway.get("/v1/voices", headers=headers).json()["voices"] == []


def test_rejects_retrying_a_challenge_after_a_failed_check(gateway, token):
    """The failed attempt consumed the challenge for good: no second recording is heard."""
    headers = token(**owner("trudy", "Trudy Smith"))
    challenge_id, statement = issue(gateway, headers, grantee_name="Retry Studios")
    silence = wav_bytes(np.zeros(16000 * 4, np.float32), 16000)
    first = enroll(
        gateway, headers, challenge_id=challenge_id, consent=silence, references=[spoken_wav(REFERENCE_TEXT)]
    )
    assert first.status_code == 422, first.text
    second = enroll(
        gateway,
        headers,
        challenge_id=challenge_id,
        consent=spoken_wav(statement),
        references=[spoken_wav(REFERENCE_TEXT)],
    )
    assert second.status_code == 409 and second.json()["error"] == "challenge_already_used", second.text
    assert denied_reasons(gateway, "trudy")[-1] == "challenge_already_used"


def test_challenge_id_probing_by_another_owner(gateway, token):
    """Another owner's challenge, presented with a real recording, answers like an unknown id
    and stays its owner's to use."""
    alice = token(**owner("alice", "Alice Brown"))
    challenge_id, statement = issue(gateway, alice, grantee_name="Alice Studios")
    thief = token(**owner("eve", "Eve Black"))
    uploads = {"consent": spoken_wav(statement), "references": [spoken_wav(REFERENCE_TEXT)]}
    stolen = enroll(gateway, thief, challenge_id=challenge_id, **uploads)
    unknown = enroll(gateway, thief, challenge_id="f" * 32, **uploads)
    assert stolen.status_code == unknown.status_code == 404, stolen.text
    assert stolen.json() == unknown.json() and stolen.json()["error"] == "challenge_not_found"
    assert challenge_id not in stolen.text
    with gateway_of(gateway.app).sessions() as session:
        assert session.get(ConsentChallenge, challenge_id).used_at is None  # still Alice's to use


def test_rejects_consent_recording_for_words_never_revealed(gateway, token):
    """A reading of words nobody was shown (learnt some other way, or guessed) is no live
    reading: refused before anything is heard, and the challenge is left as it was."""
    headers = token(**owner("nora", "Nora Quinn"))
    challenge_id, statement = issue(gateway, headers, grantee_name="Unseen Studios", reveal_words=False)
    response = enroll(
        gateway,
        headers,
        challenge_id=challenge_id,
        consent=spoken_wav(statement),
        references=[spoken_wav(REFERENCE_TEXT)],
    )
    assert response.status_code == 409 and response.json()["error"] == "consent_words_not_revealed", response.text
    assert denied_reasons(gateway, "nora") == ["consent_words_not_revealed"]
    with gateway_of(gateway.app).sessions() as session:
        challenge = session.get(ConsentChallenge, challenge_id)
        assert challenge.used_at is None and challenge.revealed_at is None


def test_rejects_consent_recording_arriving_after_the_window(gateway, token):
    """Words revealed, then a recording that comes later than the window allows: long enough to
    have had the words synthesized by an outside cloner. The reveal is moved back past the
    window instead of the test waiting it out; a second reveal does not reopen it."""
    headers = token(**owner("lena", "Lena Hart"))
    challenge_id, statement = issue(gateway, headers, grantee_name="Slow Studios")
    window = gateway_of(gateway.app).settings.consent_recording_window_seconds
    with gateway_of(gateway.app).sessions() as session:
        challenge = session.get(ConsentChallenge, challenge_id)
        challenge.revealed_at -= timedelta(seconds=window + 1)
        session.commit()
    again = reveal(gateway, headers, challenge_id)
    assert again.status_code == 200 and datetime.fromisoformat(again.json()["recording_due_by"]) < datetime.now(UTC)
    response = enroll(
        gateway,
        headers,
        challenge_id=challenge_id,
        consent=spoken_wav(statement),
        references=[spoken_wav(REFERENCE_TEXT)],
    )
    assert response.status_code == 410 and response.json()["error"] == "consent_recording_late", response.text
    assert denied_reasons(gateway, "lena") == ["consent_recording_late"]
    with gateway_of(gateway.app).sessions() as session:
        assert session.get(ConsentChallenge, challenge_id).used_at is None


def test_reveal_opens_the_window_once_for_the_owner_only(gateway, token):
    """The words go to the challenge's owner alone (another owner's reveal answers like an
    unknown id); the window opens at the first reveal and is recorded in the audit log."""
    headers = token(**owner("rita", "Rita Moss"))
    challenge_id, _ = issue(gateway, headers, grantee_name="Reveal Studios", reveal_words=False)
    first = reveal(gateway, headers, challenge_id)
    assert first.status_code == 200, first.text
    due = datetime.fromisoformat(first.json()["recording_due_by"])
    window = gateway_of(gateway.app).settings.consent_recording_window_seconds
    assert timedelta(0) < due - datetime.now(UTC) <= timedelta(seconds=window)
    assert reveal(gateway, headers, challenge_id).json() == first.json()
    opened = [e for e in audit_events(gateway, action="consent.challenge_issued") if e["actor"]["sub"] == "rita"]
    assert [e["reason"] for e in opened] == [None, "words_revealed"]

    thief = token(**owner("eve", "Eve Black"))
    stolen, unknown = reveal(gateway, thief, challenge_id), reveal(gateway, thief, "f" * 32)
    assert stolen.status_code == unknown.status_code == 404
    assert stolen.json() == unknown.json() and challenge_id not in stolen.text


def test_rejects_references_of_another_speaker(gateway, token, speech_dir):
    headers = token(**owner("oscar", "Oscar White"))
    challenge_id, statement = issue(gateway, headers, grantee_name="Oscar Studios")
    strangers = [(speech_dir / f"{name}.wav").read_bytes() for name in ("en_robert", "en_linda_johnson")]
    response = enroll(gateway, headers, challenge_id=challenge_id, consent=spoken_wav(statement), references=strangers)
    assert response.status_code == 422 and response.json()["error"] == "consent_speaker_mismatch", response.text
    assert denied_reasons(gateway, "oscar") == ["consent_speaker_mismatch"]


def test_rejects_synthetic_consent_recording(gateway, token):
    """A consent recording that carries this gateway's watermark is one of its own clones."""
    headers = token(**owner("sybil", "Sybil Grey"))
    challenge_id, statement = issue(gateway, headers, grantee_name="Sybil Studios")
    audio, rate = speak(statement)
    marked = gateway_of(gateway.app).components.watermark.embed(audio, sample_rate=rate, payload=(7).to_bytes(4, "big"))
    response = enroll(
        gateway,
        headers,
        challenge_id=challenge_id,
        consent=wav_bytes(np.clip(marked, -1, 1), rate),
        references=[spoken_wav(REFERENCE_TEXT)],
    )
    assert response.status_code == 422 and response.json()["error"] == "consent_recording_synthetic", response.text


def test_rejects_undecodable_consent_upload(gateway, token):
    headers = token(**owner("ursula", "Ursula Green"))
    challenge_id, _ = issue(gateway, headers, grantee_name="Ursula Studios")
    response = enroll(
        gateway,
        headers,
        challenge_id=challenge_id,
        consent=b"RIFF\x00\x00\x00\x00WAVEjunk",
        references=[spoken_wav(REFERENCE_TEXT)],
    )
    assert response.status_code == 422 and response.json()["error"] == "audio_corrupt", response.text
    assert denied_reasons(gateway, "ursula") == ["audio_corrupt"]
    with gateway_of(gateway.app).sessions() as session:
        assert session.get(ConsentChallenge, challenge_id).used_at is None  # nothing was heard yet


def test_rejects_client_token_enrolling_or_issuing_challenges(gateway, token):
    client = token("studio-app", "client", tenant="acme")
    response = gateway.post("/v1/consent/challenges", headers=client, json={})
    assert response.status_code == 403 and response.json()["error"] == "permission_denied"
    response = enroll(gateway, client, challenge_id="0" * 32, consent=b"x", references=[b"x"])
    assert response.status_code == 403


def test_rejects_client_reading_other_tenants_voice(gateway, token, enrolled):
    voice_id = enrolled["body"]["voice_id"]
    other = token("rival-app", "client", tenant="rival")
    assert gateway.get("/v1/voices", headers=other).json()["voices"] == []
    response = gateway.get(f"/v1/voices/{voice_id}", headers=other)
    assert response.status_code == 404 and response.json()["error"] == "voice_not_found"


def test_rejects_owner_touching_another_owners_voice(gateway, token, enrolled):
    voice_id, consent_id = enrolled["body"]["voice_id"], enrolled["body"]["consent_id"]
    eve = token(**owner("eve", "Eve Black"))
    for method, path in [
        ("get", f"/v1/voices/{voice_id}"),
        ("get", f"/v1/consents/{consent_id}"),
        ("post", f"/v1/consents/{consent_id}/revoke"),
        ("get", f"/v1/voices/{voice_id}/usage"),
        ("delete", f"/v1/voices/{voice_id}"),
    ]:
        response = getattr(gateway, method)(path, headers=eve)
        assert response.status_code == 404, (path, response.text)
    assert gateway.get(f"/v1/voices/{voice_id}", headers=enrolled["headers"]).json()["status"] == "active"


def test_rejects_samples_of_another_speaker_and_adds_own(gateway, enrolled, speech_dir):
    voice_id, headers = enrolled["body"]["voice_id"], enrolled["headers"]
    stranger = [("references", ("s.wav", (speech_dir / "en_robert.wav").read_bytes(), "audio/wav"))]
    response = gateway.post(f"/v1/voices/{voice_id}/samples", headers=headers, files=stranger)
    assert response.status_code == 422 and response.json()["error"] == "consent_speaker_mismatch", response.text
    own = [
        (
            "references",
            ("o.wav", spoken_wav("The garden gate creaked as the wind picked up in the evening."), "audio/wav"),
        )
    ]
    response = gateway.post(f"/v1/voices/{voice_id}/samples", headers=headers, files=own)
    assert response.status_code == 200 and response.json()["profile_version"] == 2, response.text


def test_identity_assurance_required_when_configured(tmp_path, loaded_models, hs256_token):
    settings = Settings(mode="dev", data_dir=tmp_path / "data", require_owner_identity_assurance=True)
    upgrade(settings.resolved_database_url)
    body = {
        "grantee_kind": "tenant",
        "grantee_id": "acme",
        "grantee_name": "Acme",
        "purposes": ["audiobook"],
        "languages": ["en"],
        "not_after": (datetime.now(UTC) + timedelta(days=1)).isoformat(),
        "max_uses": 1,
    }
    with TestClient(create_app(settings, models=loaded_models)) as client:
        unverified = bearer(hs256_token(role=["owner"], name="Ann Lee"))
        response = client.post("/v1/consent/challenges", headers=unverified, json=body)
        assert response.status_code == 403 and response.json()["error"] == "identity_assurance_required"
        verified = bearer(hs256_token(role=["owner"], name="Ann Lee", identity_verified=True))
        assert client.post("/v1/consent/challenges", headers=verified, json=body).status_code == 201


def test_revocation_and_erasure_are_recorded(gateway, token, enrolled):
    """Runs last in the module: it revokes and erases the shared voice."""
    voice_id, consent_id, headers = enrolled["body"]["voice_id"], enrolled["body"]["consent_id"], enrolled["headers"]
    assert gateway.get(f"/v1/voices/{voice_id}/usage", headers=headers).json()["usage"] == []
    revoked = gateway.post(f"/v1/consents/{consent_id}/revoke", headers=headers)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    client = token("studio-app", "client", tenant="acme")
    assert gateway.get("/v1/voices", headers=client).json()["voices"] == []
    erased = gateway.delete(f"/v1/voices/{voice_id}", headers=headers)
    assert erased.status_code == 200 and erased.json()["status"] == "erased"
    assert gateway.delete(f"/v1/voices/{voice_id}", headers=headers).status_code == 410
    with gateway_of(gateway.app).sessions() as session:
        assert session.scalars(select(VoiceSample.id).where(VoiceSample.voice_id == voice_id)).all() == []
        assert session.get(VoiceKey, voice_id) is None
    actions = [e["action"] for e in audit_events(gateway) if e["subjects"]["voice_id"] == voice_id]
    assert actions.count("consent.revoked") == 1 and actions.count("voice.erased") == 1


def test_unready_gateway_does_not_burn_the_challenge(client, hs256_token):
    """No cohort (the list cannot be checked) or an engine still loading: 503 before the
    challenge is consumed, so the owner can use it once the gateway is ready."""
    headers = bearer(hs256_token(role=["owner"], name="Ann Lee"))
    challenge_id, statement = issue(client, headers, grantee_name="Ready Studios")
    response = enroll(
        client,
        headers,
        challenge_id=challenge_id,
        consent=spoken_wav(statement),
        references=[spoken_wav(REFERENCE_TEXT)],
    )
    assert response.status_code == 503, response.text
    assert response.json()["error"] in ("blocklist_misconfigured", "engine_not_ready")
    with gateway_of(client.app).sessions() as session:
        assert session.get(ConsentChallenge, challenge_id).used_at is None
