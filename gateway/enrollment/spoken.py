"""Gateway-side glue for consent and the protected-speaker list: uploads, the hooks the policy
domain takes (watermark detector, protected-speaker check, spoken-challenge verifier), engine
profile preparation and audit events that must be committed even when the request fails.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
from fastapi import Request, UploadFile
from sqlalchemy.orm import Session, sessionmaker

from audit.events import Action, AuditEvent, Decision, Digests, Subjects
from engine.errors import EngineNotReady
from engine.interface import ReferenceClip, VoiceProfile
from gateway.audio_io import DecodedAudio, decode_audio
from gateway.auth import Principal
from gateway.engines import similarity_from_embedder
from gateway.errors import ChallengeWrongKind, PayloadTooLarge
from gateway.pipeline.steps import actor_of
from policy.consent.asr import SpeechRecognizer, default_recognizer
from policy.consent.challenges import consume_challenge, statement_of
from policy.consent.enrollment import Recording, check_not_synthetic
from policy.consent.models import ConsentChallenge
from policy.consent.statement_check import verify_statement
from policy.errors import ChallengeNotFound, StatementTemplateInvalid
from watermark import WatermarkStack

# Recordings a person reads aloud: a statement takes seconds, references at most minutes.
CONSENT_MAX_SECONDS = 60.0
REFERENCE_MAX_SECONDS = 120.0
MAX_REFERENCES = 8
# Audit digests hold at most 16 reference hashes (audit/events.py).
MAX_AUDITED_DIGESTS = 16

# Opt-out challenges use their own statement, so a consent challenge (or its recording) can
# never be used to opt out and an opt-out challenge can never enroll a voice: statement_of()
# re-renders the text with the template of the route and refuses a text of the other kind.
OPT_OUT_TEMPLATES = {
    "en": "I, {owner}, do not agree that {grantee} may use my voice for {purposes}. "
    "My confirmation words are {phrase}.",
}
OPT_OUT_GRANTEE = "anyone"
OPT_OUT_PURPOSE = "cloning"


def utcnow() -> datetime:
    return datetime.now(UTC)


def recognizer() -> SpeechRecognizer:
    return default_recognizer()


async def read_upload(upload: UploadFile, *, max_seconds: float) -> DecodedAudio:
    """Decode one uploaded file; the body-size middleware already bounds the bytes."""
    data = await upload.read()
    return decode_audio(data, max_seconds=max_seconds)


def check_reference_count(uploads: Sequence[UploadFile]) -> None:
    if len(uploads) > MAX_REFERENCES:
        raise PayloadTooLarge(f"at most {MAX_REFERENCES} reference recordings per request", code="too_many_references")


def as_recording(decoded: DecodedAudio) -> Recording:
    return Recording(audio=decoded.samples, sample_rate=decoded.sample_rate)


def reference_digests(decoded: Sequence[DecodedAudio]) -> tuple[str, ...]:
    return tuple(item.sha256 for item in decoded[:MAX_AUDITED_DIGESTS])


def watermark_detector(stack: WatermarkStack):
    """The consent domain's ``detect_watermark`` hook: the name of the first scheme of this
    gateway's stack found in the audio (our own outputs, PerTh-marking engines), or None."""

    def detect(audio: np.ndarray, sample_rate: int) -> str | None:
        found = stack.detect(np.asarray(audio, dtype=np.float32), sample_rate=sample_rate, segments=False)
        for detection in found.schemes:
            if detection.detected:
                return detection.scheme
        return None

    return detect


def statement_for(challenge: ConsentChallenge, *, templates: dict[str, str] | None):
    """The challenge's statement under this route's templates, or ``ChallengeWrongKind``."""
    try:
        return statement_of(challenge, templates=templates)
    except StatementTemplateInvalid as exc:
        raise ChallengeWrongKind(f"challenge {challenge.id} was not issued for this kind of request") from exc


def consume_committed(
    sessions: sessionmaker[Session],
    *,
    challenge_id: str,
    principal: Principal,
    templates: dict[str, str] | None,
    now: datetime,
) -> ConsentChallenge:
    """Mark the challenge used and commit at once, in a transaction of its own.

    A check that fails later (wrong statement, other speaker, replay) must not give the
    challenge back: otherwise one challenge could be tried against the recognizer with any
    number of recordings until one slips through.
    """
    with sessions() as session:
        challenge = session.get(ConsentChallenge, challenge_id)
        if challenge is not None and (challenge.owner_iss, challenge.owner_sub) == (
            principal.issuer,
            principal.subject,
        ):
            statement_for(challenge, templates=templates)  # refuse the wrong kind before consuming
        challenge = consume_challenge(
            session, challenge_id=challenge_id, owner_iss=principal.issuer, owner_sub=principal.subject, now=now
        )
        session.commit()
        session.expunge(challenge)
        return challenge


@dataclass(frozen=True)
class SpokenChallengeCheck:
    """``policy.blocklist.SpokenChallengeVerifier`` for one consumed challenge: the recording
    must say the challenge's statement and phrase and carry none of our watermarks."""

    challenge: ConsentChallenge
    templates: dict[str, str] | None
    watermark: WatermarkStack

    def verify(self, *, audio: np.ndarray, sample_rate: int) -> None:
        if self.challenge.used_at is None:
            raise ChallengeNotFound(f"challenge {self.challenge.id} was not consumed")
        verify_reading(
            challenge=self.challenge,
            templates=self.templates,
            watermark=self.watermark,
            audio=audio,
            sample_rate=sample_rate,
        )


def verify_reading(
    *,
    challenge: ConsentChallenge,
    templates: dict[str, str] | None,
    watermark: WatermarkStack,
    audio: np.ndarray,
    sample_rate: int,
) -> None:
    """Raise unless the audio says the challenge's statement and phrase and is not our output."""
    statement = statement_for(challenge, templates=templates)
    verify_statement(audio=audio, sample_rate=sample_rate, statement=statement, recognizer=recognizer())
    check_not_synthetic(
        consent=Recording(audio=audio, sample_rate=sample_rate), detect_watermark=watermark_detector(watermark)
    )


def require_ready_checks(request: Request) -> None:
    """Raise (503) before a challenge is consumed if the engine or the list cannot run: a
    gateway that is still starting must not burn the owner's challenge."""
    if not request.app.state.engine_executor.ready:
        raise EngineNotReady("the engine is still loading; try again shortly")
    request.app.state.components.blocklist.snapshot()  # BlocklistMisconfigured when unusable


def prepare_engine_profile(request: Request, *, references: Sequence[Recording]) -> VoiceProfile:
    """The engine's voice profile from the checked references (runs on the bounded executor)."""
    components = request.app.state.components
    clips = [ReferenceClip(audio=np.asarray(r.audio, dtype=np.float32), sample_rate=r.sample_rate) for r in references]
    return request.app.state.engine_executor.prepare_voice(
        references=clips, similarity=similarity_from_embedder(components.embedder)
    )


def denial_event(
    *,
    principal: Principal,
    action: Action,
    reason: str,
    voice_id: str | None = None,
    consent_id: str | None = None,
    protected_entry_id: str | None = None,
    references: tuple[str, ...] = (),
) -> AuditEvent:
    return AuditEvent(
        action=action,
        decision=Decision.DENY,
        actor=actor_of(principal),
        reason=reason,
        subjects=Subjects(voice_id=voice_id, consent_id=consent_id, protected_entry_id=protected_entry_id),
        digests=Digests(reference_sha256=references),
    )


def reason_code(exc: BaseException) -> str:
    code = getattr(exc, "code", None)
    return code if isinstance(code, str) and code else "internal_error"
