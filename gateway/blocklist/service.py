"""The protected-speaker list: admin entries and the review queue, the owner's opt-out.

Every change commits together with its audit event, then this process reloads its index at
once (other processes see the version row move within their poll interval). Reads run in the
request's session. Exceptions for one voice are in gateway/blocklist/exceptions.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from audit.events import Action, AuditEvent, Decision, Subjects
from audit.store import append_event
from gateway.audio_io import decode_audio
from gateway.auth import Principal
from gateway.blocklist.listening import list_references, play_reference
from gateway.blocklist.views import entry_details_dict, entry_dict, review_dict
from gateway.components import Components
from gateway.enrollment.spoken import (
    OPT_OUT_GRANTEE,
    OPT_OUT_PURPOSE,
    OPT_OUT_TEMPLATES,
    SpokenChallengeCheck,
    consume_committed,
    owner_identity,
    require_assurance,
)
from gateway.shared.actors import actor_key
from gateway.shared.clock import utcnow
from gateway.shared.events import decision_event, denial_event
from gateway.shared.reasons import reason_code
from gateway.shared.transactions import record_refusal, transaction
from gateway.shared.uploads import REFERENCE_MAX_SECONDS
from policy.blocklist.repository import (
    MAX_SAMPLES_PER_REQUEST,
    AudioSample,
    add_protected_speaker,
    deactivate_protected_speaker,
    inspect_protected_speaker,
    list_protected_speakers,
    opt_out_own_voice,
)
from policy.blocklist.review import decide_review, get_review_item, pending_reviews, review_status_for_requester
from policy.consent.challenges import CHALLENGE_TTL, create_challenge
from policy.errors import ProtectedSpeakerInvalid


class BlocklistService:
    def __init__(
        self, *, sessions: sessionmaker[Session], components: Components, require_identity_assurance: bool
    ) -> None:
        self._sessions = sessions
        self._parts = components
        self._require_assurance = require_identity_assurance

    # --- entries (admin) ---------------------------------------------------------------------

    def add_entry(
        self, *, principal: Principal, name: str, reason: str, source: str, samples: Sequence[bytes]
    ) -> dict[str, Any]:
        """List a speaker from recordings; only their embeddings and hashes are kept."""
        if len(samples) > MAX_SAMPLES_PER_REQUEST:
            raise ProtectedSpeakerInvalid(f"at most {MAX_SAMPLES_PER_REQUEST} samples per request")
        decoded = [decode_audio(data, max_seconds=REFERENCE_MAX_SECONDS) for data in samples]
        audio = [AudioSample(audio=d.samples, sample_rate=d.sample_rate) for d in decoded]
        with transaction(self._sessions) as session:
            entry = add_protected_speaker(
                session,
                embedder=self._parts.embedder,
                name=name,
                reason=reason,
                source=source,
                samples=audio,
                actor=actor_key(principal),
            )
            append_event(
                session,
                event=entry_event(principal, action=Action.PROTECTED_SPEAKER_ADDED, entry_id=entry.id, reason="listed"),
            )
            view = entry_dict(entry)
        self.refresh_index()
        return view

    def list_entries(self, session: Session, *, include_inactive: bool) -> list[dict[str, Any]]:
        return [entry_dict(e) for e in list_protected_speakers(session, include_inactive=include_inactive)]

    def inspect_entry(self, session: Session, *, entry_id: int) -> dict[str, Any]:
        return entry_details_dict(inspect_protected_speaker(session, entry_id=entry_id))

    def deactivate_entry(self, *, principal: Principal, entry_id: int, reason: str) -> dict[str, Any]:
        with transaction(self._sessions) as session:
            entry = deactivate_protected_speaker(session, entry_id=entry_id, actor=actor_key(principal), reason=reason)
            append_event(
                session,
                event=entry_event(
                    principal, action=Action.PROTECTED_SPEAKER_REMOVED, entry_id=entry_id, reason="deactivated"
                ),
            )
            view = entry_dict(entry)
        self.refresh_index()
        return view

    # --- review queue ----------------------------------------------------------------------------

    def list_reviews(self, session: Session) -> list[dict[str, Any]]:
        return [review_dict(item) for item in pending_reviews(session)]

    def get_review(self, session: Session, *, review_id: int) -> dict[str, Any]:
        return review_dict(get_review_item(session, item_id=review_id))

    def review_references(self, session: Session, *, review_id: int) -> dict[str, Any]:
        """The held voice's sealed references a reviewer may play (none for a held enrollment)."""
        kek = self._parts.voices.key_encryption_key
        return {
            "review_id": review_id,
            "references": list_references(session, review_id=review_id, key_encryption_key=kek),
        }

    def play_review_reference(self, *, principal: Principal, review_id: int, index: int) -> bytes:
        kek = self._parts.voices.key_encryption_key
        return play_reference(
            self._sessions, principal=principal, review_id=review_id, index=index, key_encryption_key=kek
        )

    def decide_review(self, *, principal: Principal, review_id: int, approve: bool, note: str) -> dict[str, Any]:
        with transaction(self._sessions) as session:
            item = decide_review(session, item_id=review_id, approve=approve, actor=actor_key(principal), note=note)
            append_event(
                session,
                event=decision_event(
                    principal,
                    action=Action.REVIEW_APPROVED if approve else Action.REVIEW_DENIED,
                    decision=Decision.ALLOW if approve else Decision.DENY,
                    reason="review_approved" if approve else "review_denied",
                    subjects=Subjects(protected_entry_id=str(item.entry_id), voice_id=_identifier(item.voice_id)),
                ),
            )
            view = review_dict(item)
        self.refresh_index()
        return view

    def my_review_status(self, session: Session, *, principal: Principal, review_id: int) -> dict[str, Any]:
        """The requester of a held request sees its status (another's item answers 404)."""
        status = review_status_for_requester(
            session, item_id=review_id, requester_iss=principal.issuer, requester_sub=principal.subject
        )
        return {"review_id": review_id, "status": status.value}

    # --- owner opt-out ---------------------------------------------------------------------------

    def opt_out_challenge(self, session: Session, *, principal: Principal) -> dict[str, Any]:
        """A statement refusing cloning, with a random phrase, to be read aloud within ten minutes."""
        require_assurance(principal, required=self._require_assurance)
        now = utcnow()
        challenge, statement = create_challenge(
            session,
            owner=owner_identity(principal),
            grantee_kind="subject",
            grantee_id=principal.subject,
            grantee_name=OPT_OUT_GRANTEE,
            purposes=[OPT_OUT_PURPOSE],
            languages=["en"],
            not_before=now,
            not_after=now + CHALLENGE_TTL,
            max_uses=1,
            now=now,
            templates=OPT_OUT_TEMPLATES,
        )
        append_event(session, event=decision_event(principal, action=Action.CONSENT_CHALLENGE_ISSUED, reason="opt_out"))
        return {
            "challenge_id": challenge.id,
            "statement": statement.text,
            "phrase": list(statement.phrase),
            "expires_at": challenge.expires_at.isoformat(),
        }

    def opt_out(self, *, principal: Principal, challenge_id: str, recording: bytes) -> dict[str, Any]:
        """Put the caller's own voice on the list: the recording must read the opt-out challenge."""
        digests: tuple[str, ...] = ()
        try:
            require_assurance(principal, required=self._require_assurance)
            decoded = decode_audio(recording, max_seconds=REFERENCE_MAX_SECONDS)
            digests = (decoded.sha256,)
            challenge = consume_committed(
                self._sessions,
                challenge_id=challenge_id,
                principal=principal,
                templates=OPT_OUT_TEMPLATES,
                now=utcnow(),
            )
            verifier = SpokenChallengeCheck(
                challenge=challenge,
                templates=OPT_OUT_TEMPLATES,
                watermark=self._parts.watermark,
                countermeasure=self._parts.countermeasure,
            )
            with transaction(self._sessions) as session:
                entry = opt_out_own_voice(
                    session,
                    embedder=self._parts.embedder,
                    verifier=verifier,
                    owner_iss=principal.issuer,
                    owner_sub=principal.subject,
                    display_name=principal.display_name or principal.subject,
                    audio=decoded.samples,
                    sample_rate=decoded.sample_rate,
                )
                append_event(
                    session,
                    event=entry_event(
                        principal, action=Action.PROTECTED_SPEAKER_ADDED, entry_id=entry.id, reason="opt_out"
                    ),
                )
                view = entry_dict(entry)
        except Exception as exc:
            record_refusal(
                self._sessions,
                event=denial_event(
                    principal, action=Action.CONSENT_DENIED, reason=reason_code(exc), references=digests
                ),
            )
            raise
        self.refresh_index()
        return view

    def refresh_index(self) -> None:
        self._parts.blocklist.refresh(force=True)


def entry_event(principal: Principal, *, action: Action, entry_id: int, reason: str | None = None) -> AuditEvent:
    return decision_event(principal, action=action, reason=reason, subjects=Subjects(protected_entry_id=str(entry_id)))


def _identifier(value: str) -> str | None:
    # Voice keys are hex ids or "challenge:<hex>"; anything else stays out of the log.
    return value if value and len(value) <= 200 and all(c.isalnum() or c in "._:-" for c in value) else None
