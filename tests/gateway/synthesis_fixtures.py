"""Arranging a granted voice and a ready gateway for synthesis tests.

The voice is created through the consent domain's real storage functions with an issued
challenge, but without the spoken-consent checks (those have their own tests): what is under
test here is the pipeline from a granted voice to released audio.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import soundfile
from fastapi import FastAPI
from fastapi.testclient import TestClient

from audit.events import AuditEvent
from engine.interface import EngineAudio, ReferenceClip
from gateway.app import create_app
from gateway.db import upgrade
from gateway.dependencies import gateway_of
from gateway.settings import Settings
from policy.consent.challenges import OwnerIdentity, create_challenge
from policy.consent.models import Consent, Voice
from policy.consent.storage import create_voice_key, replace_profile, store_sample
from tests.gateway.conftest import bearer
from tests.gateway.speech import logged_entries
from tests.gateway.speech import seed_cohort as seed_speech_cohort

TEXT = "The library opens at nine in the morning and closes at six in the evening."
TENANT = "acme"
PURPOSE = "narration"
OWNER_ISSUER_SUB = "owner-1"


@dataclass(frozen=True)
class GrantedVoice:
    voice_id: str
    consent_id: str
    reference: np.ndarray
    sample_rate: int


def read_clip(path: Path, *, seconds: float | None = None) -> tuple[np.ndarray, int]:
    samples, rate = soundfile.read(path, dtype="float32")
    if samples.ndim == 2:
        samples = samples.mean(axis=1)
    return (samples[: int(seconds * rate)] if seconds else samples), rate


def seed_cohort(app: FastAPI, speech_dir: Path) -> None:
    """The cohort the list needs before it can decide, picked up by this process at once."""
    seed_speech_cohort(app, embedder=gateway_of(app).components.embedder, speech_dir=speech_dir)
    gateway_of(app).components.blocklist.refresh(force=True)


def grant_voice(
    app: FastAPI, reference_path: Path, *, issuer: str, max_uses: int = 5, tenant: str = TENANT
) -> GrantedVoice:
    """An owner's voice, prepared by the engine, granted to a tenant (`acme`) for narration in English."""
    components = gateway_of(app).components
    reference, rate = read_clip(reference_path, seconds=12)
    kek = components.voices.key_encryption_key
    now = datetime.now(UTC)
    profile = gateway_of(app).components.executor.prepare_voice(
        references=[ReferenceClip(audio=reference, sample_rate=rate)]
    )
    with gateway_of(app).sessions() as session:
        challenge, _ = create_challenge(
            session,
            owner=OwnerIdentity(iss=issuer, sub=OWNER_ISSUER_SUB, display_name="Olive Owner"),
            grantee_kind="tenant",
            grantee_id=tenant,
            grantee_name="Acme Audio",
            purposes=[PURPOSE],
            languages=["en"],
            not_before=now - timedelta(hours=1),
            not_after=now + timedelta(days=1),
            max_uses=max_uses,
            now=now,
        )
        voice = Voice(
            id=secrets.token_hex(16),
            owner_iss=issuer,
            owner_sub=OWNER_ISSUER_SUB,
            owner_name="Olive Owner",
            status="active",
            embedder_name=components.embedder.name,
            profile_version=1,
            created_at=now,
        )
        session.add(voice)
        session.flush()
        create_voice_key(session, voice_id=voice.id, key_encryption_key=kek)
        consent = Consent(
            id=secrets.token_hex(16),
            voice_id=voice.id,
            challenge_id=challenge.id,
            owner_iss=issuer,
            owner_sub=OWNER_ISSUER_SUB,
            grantee_kind="tenant",
            grantee_id=tenant,
            purposes=[PURPOSE],
            languages=["en"],
            not_before=challenge.not_before,
            not_after=challenge.not_after,
            max_uses=max_uses,
            uses=0,
            statement_sha256=hashlib.sha256(challenge.statement_text.encode()).hexdigest(),
            recording_sha256=hashlib.sha256(reference.tobytes()).hexdigest(),
            created_at=now,
        )
        session.add(consent)
        session.flush()
        store_sample(
            session, voice_id=voice.id, kind="reference", data=reference, sample_rate=rate, key_encryption_key=kek
        )
        replace_profile(
            session,
            voice_id=voice.id,
            profile=components.embedder.embed(reference, sample_rate=rate),
            key_encryption_key=kek,
        )
        components.voices.save_engine_profile(session, voice_id=voice.id, profile=profile)
        session.commit()
        return GrantedVoice(voice_id=voice.id, consent_id=consent.id, reference=reference, sample_rate=rate)


class FaultEngine:
    """The real embedded engine, with a fault switched on by the test for `synthesize`."""

    def __init__(self, real) -> None:
        self.real = real
        self.fault: str | None = None
        self.during_synthesis = None  # a callable run while the engine "works"

    def __getattr__(self, name):
        return getattr(self.real, name)

    def synthesize(self, *, text, language, voice, controls, cancel=None):
        if self.during_synthesis is not None:
            self.during_synthesis()
        if self.fault == "raise":
            raise RuntimeError("the engine crashed")
        if self.fault == "hang":
            while cancel is None or not cancel.cancelled:
                time.sleep(0.05)
            cancel.raise_if_cancelled()
        audio = self.real.synthesize(text=text, language=language, voice=voice, controls=controls, cancel=cancel)
        if self.fault == "silence":
            return EngineAudio(samples=np.zeros_like(audio.samples), sample_rate=audio.sample_rate)
        if self.fault == "nan":
            return EngineAudio(samples=np.full_like(audio.samples, np.nan), sample_rate=audio.sample_rate)
        return audio


@contextmanager
def ready_gateway(settings: Settings, models, speech_dir: Path, *, reference_clip: int) -> Iterator[tuple]:
    """A migrated gateway with its engine warm and cohort seeded, and one voice (from the
    `reference_clip`-th en_* clip) granted to tenant `acme`: (client, app, voice)."""
    upgrade(settings.resolved_database_url)
    app = create_app(settings, models=models)
    with TestClient(app) as client:
        assert gateway_of(app).components.executor.wait_ready(180)
        seed_cohort(app, speech_dir)
        voice = grant_voice(
            app, sorted(speech_dir.glob("en_*.wav"))[reference_clip], issuer=settings.jwt_issuer, max_uses=1000
        )
        yield client, app, voice


def audit_events(app, **where) -> list[tuple[int, AuditEvent]]:
    """(audit identifier, event) of every event, in append order, optionally of some subjects."""
    events = [(audit_id, AuditEvent.from_canonical_bytes(entry)) for audit_id, entry in logged_entries(app)]
    return [
        (audit_id, event)
        for audit_id, event in events
        if all(getattr(event.subjects, key) == value for key, value in where.items())
    ]


def consent_uses(app, consent_id: str) -> int:
    with gateway_of(app).sessions() as session:
        return session.get(Consent, consent_id).uses


def synthesize(client, token, voice, **overrides):
    body = {"voice_id": voice.voice_id, "text": TEXT, "language": "en", "purpose": PURPOSE, "format": "wav"}
    body.update(overrides)
    # Serialised by hand: json.dumps writes NaN literally, as a hostile client would send it.
    return client.post(
        "/v1/synthesize", content=json.dumps(body), headers={**bearer(token), "Content-Type": "application/json"}
    )
