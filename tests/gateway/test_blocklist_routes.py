"""The protected-speaker list over HTTP with real parts: Piper speech, pocketsphinx,
resemblyzer and the live index of one gateway on a fresh SQLite database.

The Piper voice plays the protected person. Tests run in file order on one module app: the
admin-listed entry is deactivated before the opt-out test puts the same voice back by itself.
"""

from __future__ import annotations

import pytest
import torch

from gateway.dependencies import gateway_of
from gateway.enrollment.spoken import OPT_OUT_TEMPLATES
from policy.blocklist.review import hold_for_review
from policy.errors import SpeakerReviewRequired
from tests.gateway.speech import (
    PHRASES,
    REFERENCE_TEXT,
    audit_events,
    denied_reasons,
    enroll,
    issue,
    owner,
    pin_phrase,
    running_gateway,
    spoken_wav,
    token_maker,
)

pytestmark = pytest.mark.slow
torch.set_num_threads(1)

PROTECTED_SAMPLES = (
    "Good evening, and welcome to the late news. Tonight we look at the weather across the coast.",
    "Thank you all for coming. It has been a long year, and I am proud of what we built together.",
)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory, loaded_models, speech_dir):
    yield from running_gateway(tmp_path_factory.mktemp("blocklist-routes"), models=loaded_models, speech_dir=speech_dir)


@pytest.fixture(scope="module")
def token(gateway):
    return token_maker(gateway)


@pytest.fixture(scope="module")
def admin(token):
    return token("root", "admin")


@pytest.fixture(scope="module")
def listed(gateway, admin) -> int:
    """The Piper voice listed by an admin from two recordings."""
    files = [("samples", (f"s{i}.wav", spoken_wav(text), "audio/wav")) for i, text in enumerate(PROTECTED_SAMPLES)]
    response = gateway.post(
        "/v1/blocklist/entries",
        headers=admin,
        files=files,
        data={"name": "Joe Anchor", "reason": "news presenter", "source": "broadcast"},
    )
    assert response.status_code == 201, response.text
    return response.json()["entry_id"]


def test_rejects_client_token_on_admin_routes(gateway, token, listed):
    for headers in (token("studio-app", "client", tenant="acme"), token(**owner("joe", "Joe Miller"))):
        for method, path, kwargs in [
            ("get", "/v1/blocklist/entries", {}),
            ("get", f"/v1/blocklist/entries/{listed}", {}),
            (
                "post",
                "/v1/blocklist/entries",
                {
                    "data": {"name": "x", "reason": "x", "source": "x"},
                    "files": [("samples", ("a.wav", b"x", "audio/wav"))],
                },
            ),
            ("post", f"/v1/blocklist/entries/{listed}/deactivate", {"json": {"reason": "x"}}),
            ("post", f"/v1/blocklist/entries/{listed}/exceptions", {"data": {"note": "x", "voice_id": "0" * 32}}),
            ("post", f"/v1/blocklist/entries/{listed}/exceptions/revoke", {"json": {"voice_id": "0" * 32}}),
            ("get", "/v1/blocklist/reviews", {}),
            ("post", "/v1/blocklist/reviews/1/approve", {"json": {"note": "x"}}),
        ]:
            response = getattr(gateway, method)(path, headers=headers, **kwargs)
            assert response.status_code == 403 and response.json()["error"] == "permission_denied", (
                path,
                response.text,
            )


def test_listing_is_audited_and_inspectable(gateway, admin, listed):
    entries = gateway.get("/v1/blocklist/entries", headers=admin).json()["entries"]
    assert [(e["entry_id"], e["kind"], e["active"]) for e in entries] == [(listed, "listed", True)]
    details = gateway.get(f"/v1/blocklist/entries/{listed}", headers=admin).json()
    assert len(details["samples"]) == 2 and all(len(s["audio_sha256"]) == 64 for s in details["samples"])
    added = audit_events(gateway, action="protected_speaker.added")
    assert [e["subjects"]["protected_entry_id"] for e in added] == [str(listed)]
    assert gateway.get("/v1/blocklist/entries/999", headers=admin).status_code == 404


def test_rejects_enrollment_of_protected_voice(gateway, token, listed):
    headers = token(**owner("imposter", "Ivan Post"))
    challenge_id, statement = issue(gateway, headers, grantee_name="Imposter Studios")
    response = enroll(
        gateway,
        headers,
        challenge_id=challenge_id,
        consent=spoken_wav(statement),
        references=[spoken_wav(REFERENCE_TEXT)],
    )
    assert response.status_code == 403 and response.json()["error"] == "speaker_protected", response.text
    assert "Joe Anchor" not in response.text  # the requester is not told whom the voice matched
    assert denied_reasons(gateway, "imposter") == ["speaker_protected"]
    (denial,) = [e for e in audit_events(gateway, action="consent.denied") if e["actor"]["sub"] == "imposter"]
    assert denial["subjects"]["protected_entry_id"] == str(listed)
    assert gateway.get("/v1/voices", headers=headers).json()["voices"] == []


def test_exception_lets_exactly_one_voice_through(gateway, token, admin, listed):
    """The protected person reads their own challenge for the admin; only the enrollment with
    that challenge passes the list, and the exception then belongs to the new voice."""
    joe = token(**owner("joe", "Joe Miller"))
    own_id, own_statement = issue(gateway, joe, grantee_name="Licensed Studios", phrase=PHRASES[0])
    reading = spoken_wav(own_statement)
    granted = gateway.post(
        f"/v1/blocklist/entries/{listed}/exceptions",
        headers=admin,
        data={"note": "Joe licensed his voice to Licensed Studios", "challenge_id": own_id},
        files=[("consent_recording", ("c.wav", reading, "audio/wav"))],
    )
    assert granted.status_code == 201, granted.text
    assert granted.json()["voice_id"] == f"challenge:{own_id}"

    passed = enroll(gateway, joe, challenge_id=own_id, consent=reading, references=[spoken_wav(REFERENCE_TEXT)])
    assert passed.status_code == 201, passed.text
    voice_id = passed.json()["voice_id"]
    # Someone else with the same voice (here: the same Piper speaker) and a challenge of their own.
    twin = token(**owner("imposter", "Ivan Post"))
    other_id, other_statement = issue(gateway, twin, grantee_name="Imposter Studios", phrase=PHRASES[0])
    refused = enroll(
        gateway,
        twin,
        challenge_id=other_id,
        consent=spoken_wav(other_statement),
        references=[spoken_wav(REFERENCE_TEXT)],
    )
    assert refused.status_code == 403 and refused.json()["error"] == "speaker_protected", refused.text
    exceptions = gateway.get(f"/v1/blocklist/entries/{listed}", headers=admin).json()["exceptions"]
    assert [(e["voice_id"], e["revoked_at"]) for e in exceptions] == [(voice_id, None)]

    reused = gateway.post(
        f"/v1/blocklist/entries/{listed}/exceptions",
        headers=admin,
        data={"note": "again", "challenge_id": own_id},
        files=[("consent_recording", ("c.wav", reading, "audio/wav"))],
    )
    assert reused.status_code == 409 and reused.json()["error"] == "challenge_already_used", reused.text

    revoked = gateway.post(
        f"/v1/blocklist/entries/{listed}/exceptions/revoke", headers=admin, json={"voice_id": voice_id}
    )
    assert revoked.status_code == 200, revoked.text
    reasons = [e["reason"] for e in audit_events(gateway) if e["subjects"]["protected_entry_id"] == str(listed)]
    assert "blocklist_exception_granted" in reasons and "blocklist_exception_revoked" in reasons


def test_rejects_exception_for_a_reading_of_words_never_revealed(gateway, token, admin, listed):
    """An exception by challenge needs a live reading too: words nobody was shown cannot have
    been read live, so the reading is refused before it is heard."""
    joe = token(**owner("joe", "Joe Miller"))
    challenge_id, statement = issue(gateway, joe, grantee_name="Unseen Studios", reveal_words=False)
    refused = gateway.post(
        f"/v1/blocklist/entries/{listed}/exceptions",
        headers=admin,
        data={"note": "unrevealed", "challenge_id": challenge_id},
        files=[("consent_recording", ("c.wav", spoken_wav(statement), "audio/wav"))],
    )
    assert refused.status_code == 409 and refused.json()["error"] == "consent_words_not_revealed", refused.text
    exceptions = gateway.get(f"/v1/blocklist/entries/{listed}", headers=admin).json()["exceptions"]
    assert all(e["voice_id"] != f"challenge:{challenge_id}" for e in exceptions)


def test_review_queue_and_requester_status(gateway, token, admin, listed):
    # A hold as the synthesis pipeline leaves it (the score band is hard to hit on purpose).
    with gateway_of(gateway.app).sessions() as session:
        held = SpeakerReviewRequired("held", entry_id=listed, raw_score=0.7, normalized_score=3.0, stage="synthesis")
        item = hold_for_review(
            session,
            held=held,
            voice_id="a" * 32,
            request_ref="req-1",
            requester_iss=gateway_of(gateway.app).settings.jwt_issuer,
            requester_sub="studio-app",
            tenant="acme",
        )
        session.commit()
        item_id = item.id
    requester = token("studio-app", "client", tenant="acme")
    assert gateway.get(f"/v1/blocklist/my-reviews/{item_id}", headers=requester).json()["status"] == "pending"
    other = token("rival-app", "client", tenant="rival")
    assert gateway.get(f"/v1/blocklist/my-reviews/{item_id}", headers=other).status_code == 404
    pending = gateway.get("/v1/blocklist/reviews", headers=admin).json()["reviews"]
    assert [r["review_id"] for r in pending] == [item_id]
    approved = gateway.post(f"/v1/blocklist/reviews/{item_id}/approve", headers=admin, json={"note": "not Joe"})
    assert approved.status_code == 200 and approved.json()["status"] == "approved"
    again = gateway.post(f"/v1/blocklist/reviews/{item_id}/deny", headers=admin, json={"note": "changed mind"})
    assert again.status_code == 409 and again.json()["error"] == "review_already_decided"
    assert gateway.get(f"/v1/blocklist/my-reviews/{item_id}", headers=requester).json()["status"] == "approved"
    assert gateway.get("/v1/blocklist/reviews", headers=admin).json()["reviews"] == []
    assert "review_approved" in [e["reason"] for e in audit_events(gateway)]


def test_review_id_probing_by_another_requester(gateway, token, listed):
    """Another caller's review item answers like one that does not exist, naming no id."""
    with gateway_of(gateway.app).sessions() as session:
        held = SpeakerReviewRequired("held", entry_id=listed, raw_score=0.7, normalized_score=3.0, stage="synthesis")
        item = hold_for_review(
            session,
            held=held,
            voice_id="b" * 32,
            request_ref="req-probe",
            requester_iss=gateway_of(gateway.app).settings.jwt_issuer,
            requester_sub="studio-probe",
            tenant="acme",
        )
        session.commit()
        item_id = item.id
    prober = token("rival-app", "client", tenant="rival")
    others = gateway.get(f"/v1/blocklist/my-reviews/{item_id}", headers=prober)
    unknown = gateway.get(f"/v1/blocklist/my-reviews/{item_id + 1000}", headers=prober)
    assert others.status_code == unknown.status_code == 404
    assert others.json() == unknown.json() and others.json()["error"] == "review_item_not_found"
    assert str(item_id) not in others.json()["detail"]
    requester = token("studio-probe", "client", tenant="acme")
    assert gateway.get(f"/v1/blocklist/my-reviews/{item_id}", headers=requester).json()["status"] == "pending"


def test_deactivation_is_audited(gateway, admin, listed):
    response = gateway.post(
        f"/v1/blocklist/entries/{listed}/deactivate", headers=admin, json={"reason": "court order lifted"}
    )
    assert response.status_code == 200 and response.json()["active"] is False
    assert gateway.get("/v1/blocklist/entries", headers=admin).json()["entries"] == []
    again = gateway.post(f"/v1/blocklist/entries/{listed}/deactivate", headers=admin, json={"reason": "again"})
    assert again.status_code == 409 and again.json()["error"] == "protected_speaker_inactive"
    removed = audit_events(gateway, action="protected_speaker.removed")
    assert [e["subjects"]["protected_entry_id"] for e in removed] == [str(listed)]


def _opt_out_challenge(gateway, headers, *, phrase) -> tuple[str, str]:
    response = gateway.post("/v1/blocklist/opt-out/challenges", headers=headers)
    assert response.status_code == 201, response.text
    challenge_id = response.json()["challenge_id"]
    with gateway_of(gateway.app).sessions() as session:
        return challenge_id, pin_phrase(session, challenge_id=challenge_id, phrase=phrase, templates=OPT_OUT_TEMPLATES)


def _opt_out(gateway, headers, *, challenge_id: str, recording: bytes):
    return gateway.post(
        "/v1/blocklist/opt-out",
        headers=headers,
        data={"challenge_id": challenge_id},
        files=[("recording", ("r.wav", recording, "audio/wav"))],
    )


def test_opt_out_is_verified_then_blocks_the_voice(gateway, token, admin):
    """Runs after the admin entry was deactivated: only the opt-out protects the voice now."""
    joe = token(**owner("joe-2", "Joe Miller"))
    consent_id, consent_statement = issue(gateway, joe, grantee_name="Some Studios")
    wrong_kind = _opt_out(gateway, joe, challenge_id=consent_id, recording=spoken_wav(consent_statement))
    assert wrong_kind.status_code == 409 and wrong_kind.json()["error"] == "challenge_wrong_kind", wrong_kind.text

    first_id, first_statement = _opt_out_challenge(gateway, joe, phrase=PHRASES[0])
    misused = enroll(
        gateway,
        joe,
        challenge_id=first_id,
        consent=spoken_wav(first_statement),
        references=[spoken_wav(REFERENCE_TEXT)],
    )
    assert misused.status_code == 409 and misused.json()["error"] == "challenge_wrong_kind", misused.text
    _, other_statement = _opt_out_challenge(gateway, joe, phrase=PHRASES[1])
    unverified = _opt_out(gateway, joe, challenge_id=first_id, recording=spoken_wav(other_statement))
    assert unverified.status_code == 422 and unverified.json()["error"] == "opt_out_refused", unverified.text
    assert gateway.get("/v1/blocklist/entries", headers=admin).json()["entries"] == []

    challenge_id, statement = _opt_out_challenge(gateway, joe, phrase=PHRASES[0])
    assert "do not agree" in statement
    opted = _opt_out(gateway, joe, challenge_id=challenge_id, recording=spoken_wav(statement))
    assert opted.status_code == 201 and opted.json()["kind"] == "opt_out", opted.text
    assert [e["kind"] for e in gateway.get("/v1/blocklist/entries", headers=admin).json()["entries"]] == ["opt_out"]
    assert "opt_out" in [e["reason"] for e in audit_events(gateway, action="protected_speaker.added")]

    cloner = token(**owner("cloner", "Carl Lone"))
    enroll_id, enroll_statement = issue(gateway, cloner, grantee_name="Cloner Studios")
    response = enroll(
        gateway,
        cloner,
        challenge_id=enroll_id,
        consent=spoken_wav(enroll_statement),
        references=[spoken_wav(REFERENCE_TEXT)],
    )
    assert response.status_code == 403 and response.json()["error"] == "speaker_protected", response.text


def test_enrollment_close_to_protected_voice_is_held_for_review(tmp_path, loaded_models, speech_dir):
    """A gateway whose deny threshold no score reaches: the listed voice lands in the review
    band, the enrollment is refused and queued, and its requester can follow the item."""
    held_gateway = running_gateway(
        tmp_path / "held", models=loaded_models, speech_dir=speech_dir, blocklist_deny_threshold=1000.0
    )
    gateway = next(held_gateway)
    try:
        token = token_maker(gateway)
        admin = token("root", "admin")
        files = [("samples", (f"s{i}.wav", spoken_wav(text), "audio/wav")) for i, text in enumerate(PROTECTED_SAMPLES)]
        listed = gateway.post(
            "/v1/blocklist/entries",
            headers=admin,
            files=files,
            data={"name": "Joe Anchor", "reason": "news presenter", "source": "broadcast"},
        )
        assert listed.status_code == 201, listed.text
        headers = token(**owner("imposter", "Ivan Post"))
        challenge_id, statement = issue(gateway, headers, grantee_name="Imposter Studios")
        response = enroll(
            gateway,
            headers,
            challenge_id=challenge_id,
            consent=spoken_wav(statement),
            references=[spoken_wav(REFERENCE_TEXT)],
        )
        assert response.status_code == 409 and response.json()["error"] == "speaker_review_required", response.text
        pending = gateway.get("/v1/blocklist/reviews", headers=admin).json()["reviews"]
        assert [(r["voice_id"], r["stage"], r["requester_sub"]) for r in pending] == [
            (f"challenge:{challenge_id}", "reference", "imposter")
        ]
        review_id = pending[0]["review_id"]
        assert f"review item {review_id}" in response.json()["detail"]
        status = gateway.get(f"/v1/blocklist/my-reviews/{review_id}", headers=headers)
        assert status.status_code == 200 and status.json()["status"] == "pending"
        assert denied_reasons(gateway, "imposter") == ["speaker_review_required"]
    finally:
        held_gateway.close()


def test_exception_for_voice_enrolled_before_listing(tmp_path, loaded_models, speech_dir):
    """A voice enrolled before its speaker was listed: the exception rests on that voice's own
    stored consent recording, and only that voice passes the synthesis-time list check."""
    from gateway.synthesis.steps import check_references_not_protected
    from policy.errors import EmbeddingInvalid, SpeakerProtected

    gateway_run = running_gateway(tmp_path / "earlier", models=loaded_models, speech_dir=speech_dir)
    gateway = next(gateway_run)
    try:
        token = token_maker(gateway)
        admin, joe = token("root", "admin"), token(**owner("joe", "Joe Miller"))
        challenge_id, statement = issue(gateway, joe, grantee_name="Licensed Studios")
        enrolled = enroll(
            gateway,
            joe,
            challenge_id=challenge_id,
            consent=spoken_wav(statement),
            references=[spoken_wav(REFERENCE_TEXT)],
        )
        assert enrolled.status_code == 201, enrolled.text
        voice_id = enrolled.json()["voice_id"]
        files = [("samples", (f"s{i}.wav", spoken_wav(text), "audio/wav")) for i, text in enumerate(PROTECTED_SAMPLES)]
        entry_id = gateway.post(
            "/v1/blocklist/entries",
            headers=admin,
            files=files,
            data={"name": "Joe Anchor", "reason": "news presenter", "source": "broadcast"},
        ).json()["entry_id"]
        components = gateway_of(gateway.app).components
        with gateway_of(gateway.app).sessions() as session:
            material = components.voices.load(session, voice_id=voice_id)
        profile = material.speaker_profile
        assert material.profile_embedder_name == components.embedder.name

        def check(voice: str, *, model: str = material.profile_embedder_name) -> None:
            check_references_not_protected(
                components.blocklist, voice_id=voice, speaker_profile=profile, profile_embedder_name=model
            )

        with pytest.raises(SpeakerProtected):
            check(voice_id)
        # A profile another speaker model made is refused, never compared (fail closed after a model change).
        with pytest.raises(EmbeddingInvalid):
            check(voice_id, model="onnx-0123456789ab")
        granted = gateway.post(
            f"/v1/blocklist/entries/{entry_id}/exceptions",
            headers=admin,
            data={"note": "Joe licensed this voice", "voice_id": voice_id},
        )
        assert granted.status_code == 201 and granted.json()["consent_grant_id"] == enrolled.json()["consent_id"]
        check(voice_id)
        with pytest.raises(SpeakerProtected):
            check("f" * 32)
    finally:
        gateway_run.close()
