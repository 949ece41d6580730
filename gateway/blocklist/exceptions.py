"""Exceptions to the protected-speaker list (admin): one voice allowed past one entry, because
the protected person consented to it.

The consenting speaker must *be* the protected person (grant_exception scores the consent
recording against the entry). The recording comes from the consent domain, never from the
admin's say-so:

- ``voice_id``: an enrolled voice; its stored, verified consent recording and live consent.
- ``challenge_id`` + ``consent_recording``: the protected person's own unused consent challenge
  (issued to them by ``POST /v1/consent/challenges``) and their reading of it, which is
  verified here (statement, phrase, no watermark). The exception is keyed ``challenge:<id>``,
  so only an enrollment with that very challenge gets through; enrollment moves it to the new
  voice.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from audit.events import Action, AuditEvent, Decision, Subjects
from audit.store import append_event
from gateway.audio_io import decode_audio
from gateway.auth import Principal
from gateway.blocklist.views import granted_exception_dict, revoked_exception_dict
from gateway.components import Components
from gateway.enrollment.spoken import verify_reading
from gateway.shared.actors import actor_key
from gateway.shared.clock import utcnow
from gateway.shared.events import decision_event
from gateway.shared.transactions import transaction
from gateway.shared.uploads import CONSENT_MAX_SECONDS
from policy.blocklist.repository import grant_exception, revoke_exception
from policy.consent.grants import consents_of_voice
from policy.consent.models import ConsentChallenge, Voice
from policy.consent.storage import load_samples
from policy.errors import (
    BlocklistExceptionRefused,
    ChallengeAlreadyUsed,
    ChallengeExpired,
    ChallengeNotFound,
    ConsentWordsNotRevealed,
    VoiceErased,
    VoiceNotFound,
)


class BlocklistExceptions:
    def __init__(self, *, sessions: sessionmaker[Session], components: Components) -> None:
        self._sessions = sessions
        self._parts = components

    def grant(
        self,
        *,
        principal: Principal,
        entry_id: int,
        note: str,
        voice_id: str | None,
        challenge_id: str | None,
        consent_recording: bytes | None,
    ) -> dict[str, Any]:
        if (voice_id is None) == (challenge_id is None) or (challenge_id is not None) != (
            consent_recording is not None
        ):
            raise BlocklistExceptionRefused("give either voice_id, or challenge_id with consent_recording")
        decoded = decode_audio(consent_recording, max_seconds=CONSENT_MAX_SECONDS) if consent_recording else None
        parts = self._parts
        snapshot = parts.blocklist.snapshot()
        with transaction(self._sessions) as session:
            if voice_id is not None:
                consent_id, embedding = self._voice_consent(session, voice_id=voice_id)
                key = voice_id
            else:
                assert challenge_id is not None and decoded is not None
                consent_id, embedding = self._challenge_consent(
                    session, challenge_id=challenge_id, audio=decoded.samples, sample_rate=decoded.sample_rate
                )
                key = consent_id
            row = grant_exception(
                session,
                cohort=snapshot.index.cohort,
                # The list's own calibration: the consenting speaker must score as a deny would.
                deny_threshold=parts.blocklist.thresholds.deny,
                normalization=parts.blocklist.normalization,
                entry_id=entry_id,
                voice_id=key,
                consent_grant_id=consent_id,
                consent_speaker_embedding=embedding,
                embedder_name=parts.embedder.name,
                note=note,
                actor=actor_key(principal),
            )
            append_event(session, event=exception_event(principal, entry_id=entry_id, voice_key=key, granted=True))
            view = granted_exception_dict(entry_id, row)
        parts.blocklist.refresh(force=True)
        return view

    def revoke(self, *, principal: Principal, entry_id: int, voice_id: str) -> dict[str, Any]:
        with transaction(self._sessions) as session:
            row = revoke_exception(session, entry_id=entry_id, voice_id=voice_id, actor=actor_key(principal))
            append_event(
                session, event=exception_event(principal, entry_id=entry_id, voice_key=voice_id, granted=False)
            )
            view = revoked_exception_dict(entry_id, row)
        self._parts.blocklist.refresh(force=True)
        return view

    def _voice_consent(self, session: Session, *, voice_id: str) -> tuple[str, np.ndarray]:
        """(consent id, consent-recording embedding) of an enrolled, active voice."""
        voice = session.get(Voice, voice_id)
        if voice is None:
            raise VoiceNotFound(f"no voice {voice_id}")
        if voice.status != "active":
            raise VoiceErased(f"voice {voice_id} was erased")
        live = [c for c in consents_of_voice(session, voice_id=voice_id) if c.revoked_at is None]
        if not live:
            raise BlocklistExceptionRefused(f"voice {voice_id} has no live consent to rest an exception on")
        (audio, rate), *_ = load_samples(
            session, voice_id=voice_id, kind="consent", key_encryption_key=self._parts.voices.key_encryption_key
        )
        return live[-1].id, self._parts.embedder.embed(audio, sample_rate=rate)

    def _challenge_consent(
        self, session: Session, *, challenge_id: str, audio: np.ndarray, sample_rate: int
    ) -> tuple[str, np.ndarray]:
        """(``challenge:<id>``, embedding) after the reading of an unused challenge verified."""
        challenge = session.get(ConsentChallenge, challenge_id)
        if challenge is None:
            raise ChallengeNotFound(f"no challenge {challenge_id}")
        if challenge.used_at is not None:
            raise ChallengeAlreadyUsed("an exception must be granted before the challenge is used")
        if challenge.revealed_at is None:
            if utcnow() >= challenge.expires_at:
                raise ChallengeExpired("this challenge has expired")
            # Nobody was shown the words, so no reading of them can be live.
            raise ConsentWordsNotRevealed("the confirmation words of this challenge were never revealed")
        # Verified, not consumed: the challenge stays unused for the owner's own enrollment.
        verify_reading(
            challenge=challenge,
            templates=None,
            watermark=self._parts.watermark,
            audio=audio,
            sample_rate=sample_rate,
            countermeasure=self._parts.countermeasure,
        )
        return f"challenge:{challenge_id}", self._parts.embedder.embed(audio, sample_rate=sample_rate)


def exception_event(principal: Principal, *, entry_id: int, voice_key: str, granted: bool) -> AuditEvent:
    # An exception rests on the protected person's own consent to one voice; before enrollment the
    # voice is known only by its challenge, which goes into request_id.
    voice = voice_key if not voice_key.startswith("challenge:") else None
    return decision_event(
        principal,
        action=Action.PROTECTED_SPEAKER_EXCEPTION_GRANTED if granted else Action.PROTECTED_SPEAKER_EXCEPTION_REVOKED,
        decision=Decision.ALLOW if granted else Decision.NONE,
        reason="blocklist_exception_granted" if granted else "blocklist_exception_revoked",
        subjects=Subjects(
            voice_id=voice, protected_entry_id=str(entry_id), request_id=voice_key if voice is None else None
        ),
    )
