"""Enrollment: consent challenges, enrolling a voice, adding reference samples (role `owner`).

Enrollment runs in two transactions. The first consumes the challenge and commits, so a failed
check can never hand the challenge back for another try. The second runs checks a-f, prepares
the engine's voice profile, stores everything and appends `consent.granted` and
`voice.enrolled`; any failure rolls it back and commits a `consent.denied` event (reason = the
error code) on its own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from audit.events import Action, Decision, Digests, Subjects
from audit.store import append_event
from gateway.audio_io import decode_audio
from gateway.auth import Principal
from gateway.components import Components
from gateway.enrollment.spoken import (
    consume_committed,
    owner_identity,
    prepare_engine_profile,
    recognizer,
    require_assurance,
    require_ready_checks,
    statement_for,
    watermark_detector,
)
from gateway.errors import ChallengeWrongKind
from gateway.shared.actors import actor_key
from gateway.shared.clock import utcnow
from gateway.shared.events import decision_event, denial_event
from gateway.shared.reasons import reason_code
from gateway.shared.transactions import record_refusal, transaction
from gateway.shared.uploads import (
    CONSENT_MAX_SECONDS,
    REFERENCE_MAX_SECONDS,
    as_recording,
    check_reference_count,
    digests_of,
)
from gateway.voices.views import voice_view
from policy.blocklist.repository import transfer_exceptions
from policy.blocklist.review import hold_for_review
from policy.blocklist.scorer import CalibratedScorer
from policy.blocklist.screening import reference_check
from policy.consent.challenges import create_challenge, reveal_challenge
from policy.consent.enrollment import (
    Recording,
    add_reference_samples,
    enroll_consumed_challenge,
)
from policy.consent.models import ConsentChallenge
from policy.consent.statement_text import Statement
from policy.consent.storage import load_samples
from policy.errors import (
    ChallengeNotFound,
    ChallengeNotYours,
    NotVoiceOwner,
    SpeakerReviewRequired,
    StatementTemplateInvalid,
    VoiceNotFound,
)


@dataclass(frozen=True)
class IssuedChallenge:
    challenge: ConsentChallenge
    statement: Statement


@dataclass(frozen=True)
class RevealedChallenge:
    challenge: ConsentChallenge
    statement: Statement
    recording_due_by: datetime


@dataclass(frozen=True)
class ChallengeTerms:
    """What the owner consents to, as the challenge's statement will say it."""

    grantee_kind: str
    grantee_id: str
    grantee_name: str
    purposes: list[str]
    languages: list[str]
    not_before: datetime | None
    not_after: datetime
    max_uses: int


class EnrollmentService:
    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        components: Components,
        require_identity_assurance: bool,
        recording_window: timedelta,
    ) -> None:
        self._sessions = sessions
        self._parts = components
        self._require_assurance = require_identity_assurance
        self._recording_window = recording_window

    @property
    def recording_window(self) -> timedelta:
        return self._recording_window

    def issue_challenge(self, session: Session, *, principal: Principal, terms: ChallengeTerms) -> IssuedChallenge:
        """A single-use statement with a random phrase; the phrase stays hidden until the reveal."""
        require_assurance(principal, required=self._require_assurance)
        now = utcnow()
        challenge, statement = create_challenge(
            session,
            owner=owner_identity(principal),
            grantee_kind=terms.grantee_kind,
            grantee_id=terms.grantee_id,
            grantee_name=terms.grantee_name,
            purposes=terms.purposes,
            languages=terms.languages,
            not_before=terms.not_before or now,
            not_after=terms.not_after,
            max_uses=terms.max_uses,
            now=now,
        )
        append_event(session, event=decision_event(principal, action=Action.CONSENT_CHALLENGE_ISSUED))
        return IssuedChallenge(challenge=challenge, statement=statement)

    def reveal_challenge(self, session: Session, *, principal: Principal, challenge_id: str) -> RevealedChallenge:
        """Show the owner the confirmation words; the recording window starts at the first reveal."""
        try:
            reveal = reveal_challenge(
                session,
                challenge_id=challenge_id,
                owner_iss=principal.issuer,
                owner_sub=principal.subject,
                now=utcnow(),
            )
        except ChallengeNotYours as exc:  # answered like an unknown id: ids cannot be probed
            raise ChallengeNotFound("no such challenge") from exc
        except StatementTemplateInvalid as exc:  # an opt-out challenge shows its words when issued
            raise ChallengeWrongKind("this challenge was not issued for enrolling a voice") from exc
        if reveal.opened:
            append_event(
                session,
                event=decision_event(principal, action=Action.CONSENT_CHALLENGE_ISSUED, reason="words_revealed"),
            )
        return RevealedChallenge(
            challenge=reveal.challenge,
            statement=reveal.statement,
            recording_due_by=reveal.revealed_at + self._recording_window,
        )

    def enroll(
        self, *, principal: Principal, challenge_id: str, consent_recording: bytes, references: Sequence[bytes]
    ) -> dict[str, Any]:
        """Consent recording + references, checks a-f, engine profile, audit."""
        # The recording window is measured to the request's arrival, before any decoding.
        received_at = utcnow()
        digests: tuple[str, ...] = ()
        try:
            require_assurance(principal, required=self._require_assurance)
            check_reference_count(references)
            consent = decode_audio(consent_recording, max_seconds=CONSENT_MAX_SECONDS)
            decoded = [decode_audio(data, max_seconds=REFERENCE_MAX_SECONDS) for data in references]
            digests = digests_of([consent, *decoded])
            return self._enroll_checked(
                principal=principal,
                received_at=received_at,
                challenge_id=challenge_id,
                consent=as_recording(consent),
                references=[as_recording(item) for item in decoded],
                digests=digests,
            )
        except Exception as exc:
            if isinstance(exc, SpeakerReviewRequired):
                self._hold_enrollment(held=exc, principal=principal, challenge_id=challenge_id)
            # The matched entry goes into the audit record only; the requester's detail names no one.
            entry = getattr(exc, "entry_id", None)
            record_refusal(
                self._sessions,
                event=denial_event(
                    principal,
                    action=Action.CONSENT_DENIED,
                    reason=reason_code(exc),
                    references=digests,
                    protected_entry_id=str(entry) if isinstance(entry, int) else None,
                ),
            )
            raise

    def add_samples(self, *, principal: Principal, voice_id: str, references: Sequence[bytes]) -> dict[str, Any]:
        """More references for an enrolled voice: quality, same speaker as the consent recording,
        not protected; the speaker and engine profiles are recomputed from all references."""
        digests: tuple[str, ...] = ()
        try:
            check_reference_count(references)
            decoded = [decode_audio(data, max_seconds=REFERENCE_MAX_SECONDS) for data in references]
            digests = digests_of(decoded)
            return self._add_checked(
                principal=principal, voice_id=voice_id, references=[as_recording(d) for d in decoded], digests=digests
            )
        except Exception as exc:
            # A voice of someone else is reported as absent, and not named in the log as touched.
            known = not isinstance(exc, (NotVoiceOwner, VoiceNotFound))
            record_refusal(
                self._sessions,
                event=denial_event(
                    principal,
                    action=Action.CONSENT_DENIED,
                    reason=reason_code(exc),
                    voice_id=voice_id if known else None,
                    references=digests,
                ),
            )
            if isinstance(exc, NotVoiceOwner):
                raise VoiceNotFound(f"no voice {voice_id}") from exc
            raise

    def _enroll_checked(
        self,
        *,
        principal: Principal,
        received_at: datetime,
        challenge_id: str,
        consent: Recording,
        references: list[Recording],
        digests: tuple[str, ...],
    ) -> dict[str, Any]:
        parts = self._parts
        require_ready_checks(parts)
        now = received_at
        challenge = consume_committed(
            self._sessions,
            challenge_id=challenge_id,
            principal=principal,
            templates=None,
            now=now,
            recording_window=self._recording_window,
        )
        provisional = f"challenge:{challenge.id}"
        with transaction(self._sessions) as session:
            challenge = session.merge(challenge, load=True)
            result = enroll_consumed_challenge(
                session,
                challenge=challenge,
                consent_recording=consent,
                references=references,
                embedder=parts.embedder,
                speaker_scorer=self._speaker_scorer(),
                recognizer=recognizer(),
                detect_watermark=watermark_detector(parts.watermark),
                countermeasure=parts.countermeasure,
                check_protected=self._protected_check(voice_id=provisional),
                key_encryption_key=parts.voices.key_encryption_key,
                now=now,
            )
            profile = prepare_engine_profile(
                parts, references=references, statement=(consent, statement_for(challenge, templates=None))
            )
            parts.voices.save_engine_profile(session, voice_id=result.voice_id, profile=profile)
            moved = transfer_exceptions(
                session, from_voice_id=provisional, to_voice_id=result.voice_id, actor=actor_key(principal)
            )
            subjects = Subjects(voice_id=result.voice_id, consent_id=result.consent_id)
            for action in (Action.CONSENT_GRANTED, Action.VOICE_ENROLLED):
                append_event(
                    session,
                    event=decision_event(
                        principal,
                        action=action,
                        decision=Decision.ALLOW,
                        subjects=subjects,
                        digests=Digests(reference_sha256=digests),
                    ),
                )
        if moved:
            parts.blocklist.refresh(force=True)
        with self._sessions() as session:
            voice = voice_view(session, voice_id=result.voice_id)
        return {
            **voice,
            "consent_id": result.consent_id,
            # The worst reference against the consent recording, on the calibrated scale.
            "speaker_score": round(result.speaker.normalized, 3),
            "speaker_match_probability": round(result.speaker.probability, 3),
            "statement_score": round(result.statement.score, 3),
        }

    def _add_checked(
        self, *, principal: Principal, voice_id: str, references: list[Recording], digests: tuple[str, ...]
    ) -> dict[str, Any]:
        parts = self._parts
        kek = parts.voices.key_encryption_key
        with transaction(self._sessions) as session:
            add_reference_samples(
                session,
                voice_id=voice_id,
                owner_iss=principal.issuer,
                owner_sub=principal.subject,
                references=references,
                embedder=parts.embedder,
                speaker_scorer=self._speaker_scorer(),
                check_protected=self._protected_check(voice_id=voice_id),
                key_encryption_key=kek,
            )
            stored = [
                Recording(audio=audio, sample_rate=rate)
                for audio, rate in load_samples(session, voice_id=voice_id, kind="reference", key_encryption_key=kek)
            ]
            profile = prepare_engine_profile(parts, references=stored)
            parts.voices.save_engine_profile(session, voice_id=voice_id, profile=profile)
            append_event(
                session,
                event=decision_event(
                    principal,
                    action=Action.VOICE_ENROLLED,
                    decision=Decision.ALLOW,
                    reason="samples_added",
                    subjects=Subjects(voice_id=voice_id),
                    digests=Digests(reference_sha256=digests),
                ),
            )
        with self._sessions() as session:
            return voice_view(session, voice_id=voice_id)

    def _speaker_scorer(self) -> CalibratedScorer:
        """The consent check scores as the list does: the list's current cohort, the model's calibration."""
        parts = self._parts
        return CalibratedScorer(cohort=parts.blocklist.snapshot().index.cohort, calibration=parts.speaker_calibration)

    def _protected_check(self, *, voice_id: str) -> Callable[[Sequence[Any]], None]:
        # Any: the list's check takes anything with .audio and .sample_rate, as a Recording has
        parts = self._parts
        return reference_check(snapshot=parts.blocklist.snapshot, embedder=parts.embedder, voice_id=voice_id)

    def _hold_enrollment(self, *, held: SpeakerReviewRequired, principal: Principal, challenge_id: str) -> None:
        """Queue an enrollment whose references came close to a protected speaker (committed even
        though the request fails: the hold is its outcome)."""
        with transaction(self._sessions) as session:
            item = hold_for_review(
                session,
                held=held,
                voice_id=f"challenge:{challenge_id}",
                request_ref=challenge_id,
                requester_iss=principal.issuer,
                requester_sub=principal.subject,
                tenant=principal.tenant,
            )
        held.args = (f"{held.args[0]} (review item {item.id})",)
