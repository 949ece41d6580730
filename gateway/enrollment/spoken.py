"""Spoken challenges and the hooks the consent domain takes: what enrollment, the opt-out and a
protected person's exception share.

A challenge is consumed in a transaction of its own before its reading is checked; a reading is
verified against the challenge's statement (under the route's templates) with the speech
recognizer and must carry none of this gateway's watermarks. Engine voice profiles are prepared
on the bounded executor from checked references.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from engine.checks import MAX_REFERENCES as MAX_ENGINE_CLIPS
from engine.errors import EngineNotReady
from engine.interface import ReferenceClip, VoiceProfile
from gateway.auth import Principal
from gateway.components import Components
from gateway.engines import similarity_from_embedder
from gateway.errors import ChallengeWrongKind
from policy.consent.asr import SpeechRecognizer, default_recognizer
from policy.consent.challenges import OwnerIdentity, consume_challenge, statement_of
from policy.consent.enrollment import Recording, SpoofCheck, check_not_synthetic
from policy.consent.models import ConsentChallenge
from policy.consent.statement_check import verify_statement
from policy.consent.statement_text import Statement
from policy.errors import (
    ChallengeNotFound,
    ConsentRequestInvalid,
    IdentityAssuranceRequired,
    StatementTemplateInvalid,
)
from watermark import WatermarkStack

# Opt-out challenges use their own statement, so a consent challenge (or its recording) can
# never be used to opt out and an opt-out challenge can never enroll a voice: statement_of()
# re-renders the text with the template of the route and refuses a text of the other kind.
OPT_OUT_TEMPLATES = {
    "en": "I, {owner}, do not agree that {grantee} may use my voice for {purposes}. "
    "My confirmation words are {phrase}.",
}
OPT_OUT_GRANTEE = "anyone"
OPT_OUT_PURPOSE = "cloning"


def require_assurance(principal: Principal, *, required: bool) -> None:
    """Consenting and opting out need an identity-verified token where the deployment says so."""
    if required and not principal.identity_verified:
        raise IdentityAssuranceRequired("this deployment requires an identity-verified token to consent or opt out")


def owner_identity(principal: Principal) -> OwnerIdentity:
    """The owner as a statement names them: the token must carry a display name."""
    if not principal.display_name:
        raise ConsentRequestInvalid("the token carries no display name: the statement names the owner")
    return OwnerIdentity(iss=principal.issuer, sub=principal.subject, display_name=principal.display_name)


def recognizer() -> SpeechRecognizer:
    return default_recognizer()


def watermark_detector(stack: WatermarkStack) -> Callable[[np.ndarray, int], str | None]:
    """The consent domain's ``detect_watermark`` hook: the name of the first scheme of this
    gateway's stack found in the audio (our own outputs, PerTh-marking engines), or None."""

    def detect(audio: np.ndarray, sample_rate: int) -> str | None:
        found = stack.detect(np.asarray(audio, dtype=np.float32), sample_rate=sample_rate, segments=False)
        for detection in found.schemes:
            if detection.detected:
                return detection.scheme
        return None

    return detect


def statement_for(challenge: ConsentChallenge, *, templates: dict[str, str] | None) -> Statement:
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
    recording_window: timedelta | None = None,
) -> ConsentChallenge:
    """Mark the challenge used and commit at once, in a transaction of its own.

    With ``recording_window`` (consent enrollment), the words must have been revealed and the
    recording (arrived at ``now``) be within the window; such a refusal consumes nothing.

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
            session,
            challenge_id=challenge_id,
            owner_iss=principal.issuer,
            owner_sub=principal.subject,
            now=now,
            recording_window=recording_window,
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
    countermeasure: SpoofCheck | None = None

    def verify(self, *, audio: np.ndarray, sample_rate: int) -> None:
        if self.challenge.used_at is None:
            raise ChallengeNotFound(f"challenge {self.challenge.id} was not consumed")
        verify_reading(
            challenge=self.challenge,
            templates=self.templates,
            watermark=self.watermark,
            audio=audio,
            sample_rate=sample_rate,
            countermeasure=self.countermeasure,
        )


def verify_reading(
    *,
    challenge: ConsentChallenge,
    templates: dict[str, str] | None,
    watermark: WatermarkStack,
    audio: np.ndarray,
    sample_rate: int,
    countermeasure: SpoofCheck | None = None,
) -> None:
    """Raise unless the audio says the challenge's statement and phrase and is not synthetic
    (our watermark, or the countermeasure where one is configured)."""
    statement = statement_for(challenge, templates=templates)
    verify_statement(audio=audio, sample_rate=sample_rate, statement=statement, recognizer=recognizer())
    check_not_synthetic(
        consent=Recording(audio=audio, sample_rate=sample_rate),
        detect_watermark=watermark_detector(watermark),
        countermeasure=countermeasure,
    )


def require_ready_checks(components: Components) -> None:
    """Raise (503) before a challenge is consumed if the engine or the list cannot run: a
    gateway that is still starting must not burn the owner's challenge."""
    if not components.executor.ready:
        raise EngineNotReady("the engine is still loading; try again shortly")
    components.blocklist.snapshot()  # BlocklistMisconfigured when unusable


def prepare_engine_profile(
    components: Components,
    *,
    references: Sequence[Recording],
    statement: tuple[Recording, Statement] | None = None,
) -> VoiceProfile:
    """The engine's voice profile from the checked recordings (runs on the bounded executor).

    Every clip goes with what it says, as data: each reference with what the recognizer heard
    in it, and the consent recording, while the engine's clip limit leaves room, with its
    statement's text. The embedded engine learns its conversion from the base voice reading the
    same words; engines that condition on a transcript read it too.
    """
    heard = recognizer()
    clips = [
        ReferenceClip(
            audio=np.asarray(r.audio, dtype=np.float32),
            sample_rate=r.sample_rate,
            transcript=" ".join(w.text for w in heard.transcribe_open(r.audio, sample_rate=r.sample_rate)) or None,
        )
        for r in references
    ]
    if statement is not None and len(clips) < MAX_ENGINE_CLIPS:
        recording, said = statement
        clips.insert(
            0,
            ReferenceClip(
                audio=np.asarray(recording.audio, dtype=np.float32),
                sample_rate=recording.sample_rate,
                transcript=said.text,
            ),
        )
    return components.executor.prepare_voice(references=clips, similarity=similarity_from_embedder(components.embedder))
