"""Challenges, grant evaluation, revocation, usage ledger and erasure on SQLite and PostgreSQL."""

from __future__ import annotations

import secrets
import threading
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from policy.consent import (
    OwnerIdentity,
    authorize_use,
    consume_challenge,
    create_challenge,
    erase_voice_data,
    load_samples,
    recheck,
    record_usage,
    revoke_consent,
    usage_of_voice,
    voices_granted_to,
)
from policy.consent.models import Consent, Voice, VoiceKey, VoiceSample
from policy.consent.storage import create_voice_key, purge_erased_remnants, store_sample
from policy.errors import (
    ChallengeAlreadyUsed,
    ChallengeExpired,
    ChallengeNotYours,
    ConsentMissing,
    ConsentNotInWindow,
    ConsentRequestInvalid,
    ConsentRevoked,
    ConsentScopeMismatch,
    ConsentUsesExhausted,
    NotVoiceOwner,
    VoiceErased,
    VoiceKeyDestroyed,
)

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
OWNER = OwnerIdentity(iss="https://idp.example", sub="alice", display_name="Alice Smith")
KEK = bytes(range(32))


def _challenge(session: Session, **overrides):
    args = dict(
        owner=OWNER,
        grantee_kind="tenant",
        grantee_id="acme",
        grantee_name="Acme Studios",
        purposes=["audiobook"],
        languages=["en"],
        not_before=NOW - timedelta(days=1),
        not_after=NOW + timedelta(days=30),
        max_uses=3,
        now=NOW,
    )
    args.update(overrides)
    return create_challenge(session, **args)


def _voice_with_consent(session: Session, *, max_uses: int = 3, grantee_kind: str = "tenant", grantee_id: str = "acme"):
    """A voice and consent as enrollment stores them (enrollment itself is tested with real speech)."""
    challenge, _ = _challenge(session, max_uses=max_uses, grantee_kind=grantee_kind, grantee_id=grantee_id)
    consume_challenge(session, challenge_id=challenge.id, owner_iss=OWNER.iss, owner_sub=OWNER.sub, now=NOW)
    voice = Voice(
        id=secrets.token_hex(16),
        owner_iss=OWNER.iss,
        owner_sub=OWNER.sub,
        owner_name=OWNER.display_name,
        status="active",
        embedder_name="test",
        profile_version=1,
        created_at=NOW,
    )
    session.add(voice)
    session.flush()
    consent = Consent(
        id=secrets.token_hex(16),
        voice_id=voice.id,
        challenge_id=challenge.id,
        owner_iss=OWNER.iss,
        owner_sub=OWNER.sub,
        grantee_kind=challenge.grantee_kind,
        grantee_id=challenge.grantee_id,
        purposes=challenge.purposes,
        languages=challenge.languages,
        not_before=challenge.not_before,
        not_after=challenge.not_after,
        max_uses=max_uses,
        uses=0,
        statement_sha256="0" * 64,
        recording_sha256="1" * 64,
        created_at=NOW,
    )
    session.add(consent)
    session.flush()
    return voice, consent


def _use(session, voice, *, sub="client-1", tenant="acme", purpose="audiobook", language="en", now=NOW):
    return authorize_use(
        session,
        voice_id=voice.id,
        principal_iss="https://idp.example",
        principal_sub=sub,
        tenant=tenant,
        purpose=purpose,
        language=language,
        now=now,
    )


def test_challenge_statement_names_owner_grantee_purpose_and_phrase(db_session):
    challenge, statement = _challenge(db_session)
    assert "Alice Smith" in statement.text and "Acme Studios" in statement.text and "audiobook" in statement.text
    assert len(statement.phrase) >= 4 and statement.text.rstrip(".").endswith(" ".join(statement.phrase))
    assert challenge.expires_at - challenge.created_at == timedelta(minutes=10)


def test_rejects_reused_challenge(db_session):
    challenge, _ = _challenge(db_session)
    consume_challenge(db_session, challenge_id=challenge.id, owner_iss=OWNER.iss, owner_sub=OWNER.sub, now=NOW)
    with pytest.raises(ChallengeAlreadyUsed):
        consume_challenge(db_session, challenge_id=challenge.id, owner_iss=OWNER.iss, owner_sub=OWNER.sub, now=NOW)


def test_rejects_expired_challenge(db_session):
    challenge, _ = _challenge(db_session)
    with pytest.raises(ChallengeExpired):
        consume_challenge(
            db_session,
            challenge_id=challenge.id,
            owner_iss=OWNER.iss,
            owner_sub=OWNER.sub,
            now=NOW + timedelta(minutes=10),
        )


def test_rejects_challenge_used_by_another_identity(db_session):
    challenge, _ = _challenge(db_session)
    with pytest.raises(ChallengeNotYours):
        consume_challenge(db_session, challenge_id=challenge.id, owner_iss=OWNER.iss, owner_sub="mallory", now=NOW)


@pytest.mark.parametrize(
    "overrides",
    [
        {"purposes": []},
        {"languages": []},
        {"max_uses": 0},
        {"max_uses": True},
        {"grantee_kind": "world"},
        {"not_after": NOW - timedelta(days=2)},
    ],
)
def test_rejects_invalid_challenge_request(overrides):
    # Validation happens before anything touches the database: an unbound session suffices.
    with pytest.raises(ConsentRequestInvalid):
        _challenge(Session(), **overrides)


def test_authorize_use_counts_and_stops_at_max_uses(db_session):
    voice, consent = _voice_with_consent(db_session, max_uses=2)
    assert _use(db_session, voice).uses == 1
    assert _use(db_session, voice).uses == 2
    with pytest.raises(ConsentUsesExhausted):
        _use(db_session, voice)
    db_session.refresh(consent)
    assert consent.uses == 2


def test_rejects_client_of_another_tenant(db_session):
    voice, _ = _voice_with_consent(db_session)
    with pytest.raises(ConsentMissing):
        _use(db_session, voice, tenant="other-tenant")
    assert voices_granted_to(db_session, principal_sub="client-1", tenant="other-tenant", now=NOW) == []
    assert [v.id for v in voices_granted_to(db_session, principal_sub="client-1", tenant="acme", now=NOW)] == [voice.id]


def test_subject_grant_covers_only_that_subject(db_session):
    voice, _ = _voice_with_consent(db_session, grantee_kind="subject", grantee_id="client-7")
    assert _use(db_session, voice, sub="client-7", tenant=None).uses == 1
    with pytest.raises(ConsentMissing):
        _use(db_session, voice, sub="client-8", tenant="acme")


def test_rejects_purpose_or_language_outside_consent(db_session):
    voice, _ = _voice_with_consent(db_session)
    with pytest.raises(ConsentScopeMismatch):
        _use(db_session, voice, purpose="advertising")
    with pytest.raises(ConsentScopeMismatch):
        _use(db_session, voice, language="de")


def test_rejects_use_outside_validity_window(db_session):
    voice, _ = _voice_with_consent(db_session)
    with pytest.raises(ConsentNotInWindow):
        _use(db_session, voice, now=NOW + timedelta(days=31))
    with pytest.raises(ConsentNotInWindow):
        _use(db_session, voice, now=NOW - timedelta(days=2))


def test_rejects_use_after_revocation(db_session):
    voice, consent = _voice_with_consent(db_session)
    with pytest.raises(NotVoiceOwner):
        revoke_consent(db_session, consent_id=consent.id, owner_iss=OWNER.iss, owner_sub="mallory", now=NOW)
    revoke_consent(db_session, consent_id=consent.id, owner_iss=OWNER.iss, owner_sub=OWNER.sub, now=NOW)
    with pytest.raises(ConsentRevoked):
        _use(db_session, voice)


def test_revocation_during_inflight_synthesis_blocks_release(db_engine):
    """The pipeline authorizes, synthesizes, then rechecks: a revocation committed meanwhile by
    another transaction makes the release-time recheck raise."""
    with Session(db_engine) as setup:
        voice, consent = _voice_with_consent(setup)
        setup.commit()
        voice_id, consent_id = voice.id, consent.id
    with Session(db_engine) as pipeline:
        grant = authorize_use(
            pipeline,
            voice_id=voice_id,
            principal_iss="i",
            principal_sub="client-1",
            tenant="acme",
            purpose="audiobook",
            language="en",
            now=NOW,
        )
        pipeline.commit()
        recheck(pipeline, grant=grant, now=NOW)  # still live before the revocation
        with Session(db_engine) as owner:
            revoke_consent(owner, consent_id=consent_id, owner_iss=OWNER.iss, owner_sub=OWNER.sub, now=NOW)
            owner.commit()
        with pytest.raises(ConsentRevoked):
            recheck(pipeline, grant=grant, now=NOW)


@pytest.mark.postgres
def test_concurrent_uses_never_exceed_max_uses(db_engine):
    if db_engine.dialect.name != "postgresql":
        pytest.skip("row-level concurrency is what PostgreSQL is for; SQLite serializes writers")
    max_uses, workers = 5, 16
    with Session(db_engine) as setup:
        voice, consent = _voice_with_consent(setup, max_uses=max_uses)
        setup.commit()
        voice_id, consent_id = voice.id, consent.id
    barrier = threading.Barrier(workers)
    outcomes: list[str] = []
    lock = threading.Lock()

    def worker() -> None:
        with Session(db_engine) as session:
            barrier.wait()
            try:
                authorize_use(
                    session,
                    voice_id=voice_id,
                    principal_iss="i",
                    principal_sub="c",
                    tenant="acme",
                    purpose="audiobook",
                    language="en",
                    now=NOW,
                )
                session.commit()
                result = "granted"
            except ConsentUsesExhausted:
                session.rollback()
                result = "exhausted"
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count("granted") == max_uses and outcomes.count("exhausted") == workers - max_uses
    with Session(db_engine) as check:
        assert check.get(Consent, consent_id).uses == max_uses


def _own_use(session, voice, *, sub=OWNER.sub, as_owner=True, purpose="personal", language="de"):
    return authorize_use(
        session,
        voice_id=voice.id,
        principal_iss=OWNER.iss,
        principal_sub=sub,
        tenant=None,
        purpose=purpose,
        language=language,
        now=NOW,
        as_owner=as_owner,
    )


def test_owner_uses_own_voice_without_a_grant_and_counts_no_grantee_use(db_session):
    voice, consent = _voice_with_consent(db_session, max_uses=1)
    grant = _own_use(db_session, voice)
    assert grant.owner_use and grant.consent_id is None and (grant.purpose, grant.language) == ("personal", "de")
    _own_use(db_session, voice)
    db_session.refresh(consent)
    assert consent.uses == 0  # the grantee's single use is untouched
    recheck(db_session, grant=grant, now=NOW)
    record_usage(
        db_session,
        grant=grant,
        principal_iss=OWNER.iss,
        principal_sub=OWNER.sub,
        tenant=None,
        text_sha256="b" * 64,
        audit_index=7,
        now=NOW,
    )
    rows = usage_of_voice(db_session, voice_id=voice.id, owner_iss=OWNER.iss, owner_sub=OWNER.sub)
    assert [(r.consent_id, r.principal_sub, r.audit_index) for r in rows] == [(None, OWNER.sub, 7)]


def test_owner_use_survives_revoking_every_grant(db_session):
    voice, consent = _voice_with_consent(db_session)
    revoke_consent(db_session, consent_id=consent.id, owner_iss=OWNER.iss, owner_sub=OWNER.sub, now=NOW)
    assert _own_use(db_session, voice).owner_use


def test_rejects_other_subject_claiming_owner_role(db_session):
    voice, _ = _voice_with_consent(db_session)
    with pytest.raises(ConsentMissing):
        _own_use(db_session, voice, sub="mallory")


def test_rejects_owner_identity_acting_in_another_role(db_session):
    # The same person with a client token is a grantee like any other: no grant, no use.
    voice, _ = _voice_with_consent(db_session)
    with pytest.raises(ConsentMissing):
        _own_use(db_session, voice, as_owner=False)


def test_erasure_during_owner_synthesis_blocks_release(db_session):
    voice, _ = _voice_with_consent(db_session)
    grant = _own_use(db_session, voice)
    erase_voice_data(db_session, voice_id=voice.id, now=NOW)
    with pytest.raises(VoiceErased):
        recheck(db_session, grant=grant, now=NOW)
    with pytest.raises(VoiceErased):
        _own_use(db_session, voice)


def test_usage_ledger_shows_owner_each_use_and_hides_it_from_others(db_session):
    voice, _ = _voice_with_consent(db_session)
    grant = _use(db_session, voice)
    record_usage(
        db_session,
        grant=grant,
        principal_iss="https://idp.example",
        principal_sub="client-1",
        tenant="acme",
        text_sha256="a" * 64,
        audit_index=41,
        now=NOW,
    )
    rows = usage_of_voice(db_session, voice_id=voice.id, owner_iss=OWNER.iss, owner_sub=OWNER.sub)
    assert [(r.principal_sub, r.purpose, r.text_sha256, r.audit_index) for r in rows] == [
        ("client-1", "audiobook", "a" * 64, 41)
    ]
    with pytest.raises(NotVoiceOwner):
        usage_of_voice(db_session, voice_id=voice.id, owner_iss=OWNER.iss, owner_sub="mallory")


def test_erasure_destroys_key_and_samples_and_revokes(db_session):
    voice, consent = _voice_with_consent(db_session)
    create_voice_key(db_session, voice_id=voice.id, key_encryption_key=KEK)
    audio = np.random.default_rng(1).uniform(-0.5, 0.5, 16000).astype(np.float32)
    row = store_sample(
        db_session, voice_id=voice.id, kind="reference", data=audio, sample_rate=16000, key_encryption_key=KEK
    )
    assert audio.tobytes() not in row.ciphertext
    ((stored, rate),) = load_samples(db_session, voice_id=voice.id, kind="reference", key_encryption_key=KEK)
    assert rate == 16000 and np.array_equal(stored, audio)

    erase_voice_data(db_session, voice_id=voice.id, now=NOW)
    db_session.commit()
    purge_erased_remnants(db_session.get_bind())  # WAL checkpoint on SQLite, VACUUM on PostgreSQL
    assert db_session.scalar(select(func.count()).select_from(VoiceSample).where(VoiceSample.voice_id == voice.id)) == 0
    assert db_session.get(VoiceKey, voice.id) is None
    with pytest.raises(VoiceKeyDestroyed):
        load_samples(db_session, voice_id=voice.id, kind="reference", key_encryption_key=KEK)
    db_session.refresh(consent)
    assert consent.revoked_at is not None
    with pytest.raises(VoiceErased):
        _use(db_session, voice)
    with pytest.raises(VoiceErased):
        erase_voice_data(db_session, voice_id=voice.id, now=NOW)


def test_rejects_sample_moved_to_another_voice(db_session):
    """A ciphertext copied under another voice id does not decrypt (voice id is associated data)."""
    first, _ = _voice_with_consent(db_session)
    second, _ = _voice_with_consent(db_session)
    for voice in (first, second):
        create_voice_key(db_session, voice_id=voice.id, key_encryption_key=KEK)
    row = store_sample(
        db_session,
        voice_id=first.id,
        kind="reference",
        data=np.zeros(160, np.float32),
        sample_rate=16000,
        key_encryption_key=KEK,
    )
    row.voice_id = second.id
    db_session.flush()
    from cryptography.exceptions import InvalidTag

    with pytest.raises(InvalidTag):
        load_samples(db_session, voice_id=second.id, kind="reference", key_encryption_key=KEK)


def test_rejects_wrong_key_encryption_key(db_session):
    voice, _ = _voice_with_consent(db_session)
    with pytest.raises(ConsentRequestInvalid):
        create_voice_key(db_session, voice_id=voice.id, key_encryption_key=b"short")
