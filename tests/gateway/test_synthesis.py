"""POST /v1/synthesize: consented voices get marked, labelled, audited audio; nothing else does."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime

import numpy as np
import pytest
from sqlalchemy import select

from engine.interface import CancelToken
from gateway.audio_io import decode_audio
from gateway.dependencies import gateway_of
from gateway.synthesis.service import StepTimes
from gateway.synthesis.steps import SynthesisRequest, payload_for
from policy.blocklist.live import LiveBlocklist
from policy.blocklist.matching import BlocklistThresholds
from policy.blocklist.repository import AudioSample, add_protected_speaker, deactivate_protected_speaker
from policy.consent.grants import revoke_consent
from policy.consent.models import Consent, UsageRecord
from policy.errors import ConsentRevoked
from tests.gateway.conftest import bearer, synthesis_replaced
from tests.gateway.synthesis_fixtures import (
    OWNER_ISSUER_SUB,
    PURPOSE,
    TENANT,
    TEXT,
    audit_events,
    consent_uses,
    synthesize,
)


def test_released_audio_carries_a_mark_that_points_at_its_audit_event(gateway, client_token):
    client, app, voice = gateway
    response = synthesize(client, client_token, voice)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "audio/wav"
    assert response.headers["x-ai-generated"] == "true"
    timed_steps = {part.split(";")[0] for part in response.headers["server-timing"].split(", ")}
    assert {"consent", "blocklist_references", "audit_admitted", "engine", "watermark", "release"} <= timed_steps
    audit_id = int(response.headers["x-clonegate-audit-id"])

    decoded = decode_audio(response.content)
    assert decoded.duration_seconds > 2.0
    found = gateway_of(app).components.watermark.detect(decoded.samples, sample_rate=decoded.sample_rate)
    keyed = found.scheme("keyed")
    assert keyed.payload_verified and keyed.payload == payload_for(audit_id)

    by_id = dict(audit_events(app))
    admitted = by_id[audit_id]
    assert admitted.action.value == "request.admitted"
    released = by_id[int(response.headers["x-clonegate-release-audit-id"])]
    assert released.action.value == "request.released"
    assert released.subjects.request_id == admitted.subjects.request_id
    assert released.watermark_id == payload_for(audit_id).hex()
    assert released.digests.output_sha256 == hashlib.sha256(response.content).hexdigest()
    with gateway_of(app).sessions() as session:
        usage = session.scalars(select(UsageRecord).where(UsageRecord.audit_index == audit_id)).one()
    assert usage.tenant == TENANT and usage.purpose == PURPOSE


@pytest.mark.parametrize("output_format", ["flac", "mp3", "ogg"])
def test_every_output_format_decodes_to_marked_audio(gateway, client_token, output_format):
    client, app, voice = gateway
    response = synthesize(client, client_token, voice, format=output_format)
    assert response.status_code == 200, response.text
    decoded = decode_audio(response.content)
    keyed = (
        gateway_of(app).components.watermark.detect(decoded.samples, sample_rate=decoded.sample_rate).scheme("keyed")
    )
    assert keyed.payload == payload_for(int(response.headers["x-clonegate-audit-id"]))


def test_owner_synthesizes_own_voice_without_a_grant(gateway, hs256_token):
    client, app, voice = gateway
    before = consent_uses(app, voice.consent_id)
    owner = hs256_token(sub=OWNER_ISSUER_SUB, role=["owner"])
    response = synthesize(client, owner, voice, purpose="personal")
    assert response.status_code == 200, response.text
    assert response.headers["x-clonegate-consent-id"] == "owner"
    audit_id = int(response.headers["x-clonegate-audit-id"])
    decoded = decode_audio(response.content)
    keyed = (
        gateway_of(app).components.watermark.detect(decoded.samples, sample_rate=decoded.sample_rate).scheme("keyed")
    )
    assert keyed.payload_verified and keyed.payload == payload_for(audit_id)
    admitted = dict(audit_events(app))[audit_id]
    assert admitted.subjects.consent_id is None and admitted.actor.sub == OWNER_ISSUER_SUB
    assert consent_uses(app, voice.consent_id) == before  # no grantee's use was spent
    usage = client.get(f"/v1/voices/{voice.voice_id}/usage", headers=bearer(owner)).json()["usage"]
    assert {"consent_id": None, "audit_index": audit_id, "purpose": "personal"}.items() <= usage[-1].items()


def test_rejects_another_owner_using_a_voice_not_theirs(gateway, hs256_token):
    client, _app, voice = gateway
    response = synthesize(client, hs256_token(sub="owner-2", role=["owner"]), voice)
    # Answered like an unknown voice (tests/gateway/test_id_probing.py compares the two).
    assert response.status_code == 404 and response.json()["error"] == "voice_not_found"


def test_rejects_client_of_another_tenant(gateway, hs256_token):
    client, app, voice = gateway
    before = consent_uses(app, voice.consent_id)
    response = synthesize(client, hs256_token(sub="intruder", role=["client"], tenant="other"), voice)
    assert response.status_code == 404
    assert response.json()["error"] == "voice_not_found"
    assert "audio" not in response.headers["content-type"]
    assert consent_uses(app, voice.consent_id) == before
    assert audit_events(app)[-1][1].reason == "consent_missing"  # the log keeps why


def test_rejects_purpose_outside_the_grant(gateway, client_token):
    client, _, voice = gateway
    response = synthesize(client, client_token, voice, purpose="advertising")
    assert response.status_code == 403
    assert response.json()["error"] == "consent_scope_mismatch"


def test_rejects_auditor_token_on_synthesis(gateway, hs256_token):
    client, _, voice = gateway
    response = synthesize(client, hs256_token(role=["auditor"]), voice)
    assert response.status_code == 403
    assert response.json()["error"] == "permission_denied"


def test_denied_text_counts_no_use_and_is_audited(gateway, client_token):
    client, app, voice = gateway
    before = consent_uses(app, voice.consent_id)
    response = synthesize(client, client_token, voice, text="Please wire the money to this account.")
    assert response.status_code == 422
    assert response.json()["error"] == "text_denied"
    assert consent_uses(app, voice.consent_id) == before
    last = audit_events(app, voice_id=voice.voice_id)[-1][1]
    assert (last.action.value, last.reason) == ("request.denied", "text_denied")


def test_rejects_malformed_requests_before_anything_happens(gateway, client_token):
    client, app, voice = gateway
    count = len(audit_events(app))
    for overrides in (
        {"voice_id": "../../etc/passwd"},
        {"speed": 9.0},
        {"format": "exe"},
        {"text": ""},
        {"pitch_semitones": float("nan")},
    ):
        response = synthesize(client, client_token, voice, **overrides)
        assert response.status_code == 422, overrides
        assert response.json()["error"] == "invalid_request"
    assert len(audit_events(app)) == count


def test_revocation_during_synthesis_releases_nothing(gateway, client_token, hs256_token):
    client, app, voice = gateway
    service = gateway_of(app).services.synthesis
    principal = gateway_of(app).token_verifier.verify(client_token)
    request = SynthesisRequest(voice_id=voice.voice_id, text=TEXT, language="en", purpose=PURPOSE)
    admission = service.admit(principal=principal, request=request)
    with gateway_of(app).sessions() as session:
        revoke_consent(
            session,
            consent_id=voice.consent_id,
            owner_iss=principal.issuer,
            owner_sub=OWNER_ISSUER_SUB,
            now=datetime.now(UTC),
        )
        session.commit()
    try:
        with pytest.raises(ConsentRevoked):
            service.release_whole(
                principal=principal,
                request=request,
                admission=admission,
                encoding=service.file_encoding("wav"),
                cancel=CancelToken(),
                times=StepTimes(),
            )
        later = synthesize(client, client_token, voice)
        assert later.status_code == 403 and later.json()["error"] == "consent_revoked"
        released = [
            event
            for _, event in audit_events(app)
            if event.subjects.request_id == admission.request_id and event.action.value == "request.released"
        ]
        assert released == []
    finally:
        with gateway_of(app).sessions() as session:
            session.get(Consent, voice.consent_id).revoked_at = None
            session.commit()


def test_consent_uses_are_never_exceeded(gateway, client_token):
    client, app, voice = gateway
    with gateway_of(app).sessions() as session:
        consent = session.get(Consent, voice.consent_id)
        consent.max_uses = consent.uses + 1
        session.commit()
    try:
        assert synthesize(client, client_token, voice).status_code == 200
        exhausted = synthesize(client, client_token, voice)
        assert exhausted.status_code == 403 and exhausted.json()["error"] == "consent_uses_exhausted"
    finally:
        with gateway_of(app).sessions() as session:
            session.get(Consent, voice.consent_id).max_uses = 1000
            session.commit()


def test_engine_output_is_unmarked_until_the_watermark_step(gateway, client_token):
    """The mark in released audio comes from the pipeline, not from the engine."""
    client, app, voice = gateway
    with gateway_of(app).sessions() as session:
        material = gateway_of(app).components.voices.load(session, voice_id=voice.voice_id)
    raw = gateway_of(app).components.executor.synthesize(text=TEXT, language="en", voice=material.engine_profile)
    unmarked = gateway_of(app).components.watermark.detect(np.asarray(raw.samples), sample_rate=raw.sample_rate)
    assert not unmarked.scheme("keyed").detected
    released = decode_audio(synthesize(client, client_token, voice).content)
    marked = gateway_of(app).components.watermark.detect(released.samples, sample_rate=released.sample_rate)
    assert marked.scheme("keyed").payload_verified


def test_voice_close_to_a_protected_speaker_is_held_for_review(gateway, client_token, hs256_token):
    """Between the two thresholds a request is held: no audio, a review item the requester can
    follow, and after an admin's approval the same voice is served."""
    client, app, voice = gateway
    components = gateway_of(app).components
    with gateway_of(app).sessions() as session:
        entry = add_protected_speaker(
            session,
            embedder=components.embedder,
            name="Near Namesake",
            reason="test",
            source="test",
            actor="test",
            samples=[AudioSample(audio=voice.reference, sample_rate=voice.sample_rate)],
        )
        session.commit()
        entry_id = entry.id
    # Real components with a review band that covers every score, so the hold is certain.
    reviewing = LiveBlocklist(
        session_factory=gateway_of(app).sessions,
        embedder_name=components.embedder.name,
        dimension=components.embedder.dimension,
        thresholds=BlocklistThresholds(deny=1e6, review=-1e6),
    )
    try:
        with synthesis_replaced(app, blocklist=reviewing):
            held = synthesize(client, client_token, voice)
            assert held.status_code == 409 and held.json()["error"] == "speaker_review_required"
            assert not held.headers["content-type"].startswith("audio/")
            item_id = int(re.search(r"review item (\d+)", held.json()["detail"]).group(1))
            status = client.get(f"/v1/blocklist/my-reviews/{item_id}", headers=bearer(client_token))
            assert status.json()["status"] == "pending"
            approved = client.post(
                f"/v1/blocklist/reviews/{item_id}/approve",
                json={"note": "a different person"},
                headers=bearer(hs256_token(role=["admin"])),
            )
            assert approved.status_code == 200, approved.text
            reviewing.refresh(force=True)
            assert synthesize(client, client_token, voice).status_code == 200
    finally:
        with gateway_of(app).sessions() as session:
            deactivate_protected_speaker(session, entry_id=entry_id, actor="test", reason="test over")
            session.commit()
        components.blocklist.refresh(force=True)


def test_short_utterance_is_released_with_a_detectable_mark(gateway, client_token):
    """Under 3 s a whole payload frame does not fit: the output must still carry the keyed mark,
    and its audit record is found through the released event's output hash."""
    client, app, voice = gateway
    response = synthesize(client, client_token, voice, text="Welcome to the museum.")
    assert response.status_code == 200, response.text
    decoded = decode_audio(response.content)
    assert decoded.duration_seconds < 3.0
    keyed = (
        gateway_of(app).components.watermark.detect(decoded.samples, sample_rate=decoded.sample_rate).scheme("keyed")
    )
    assert keyed.detected and keyed.false_positive_probability <= 1e-4
    released = dict(audit_events(app))[int(response.headers["x-clonegate-release-audit-id"])]
    assert released.digests.output_sha256 == hashlib.sha256(response.content).hexdigest()
