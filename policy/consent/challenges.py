"""Consent challenges: issue one (statement with a random phrase), consume it exactly once."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, update
from sqlalchemy.orm import Session

from policy.consent.models import ConsentChallenge
from policy.consent.statement_text import (
    DEFAULT_TEMPLATES,
    MIN_PHRASE_WORDS,
    Statement,
    random_phrase,
    render_statement,
)
from policy.errors import (
    ChallengeAlreadyUsed,
    ChallengeExpired,
    ChallengeNotFound,
    ChallengeNotYours,
    ConsentRecordingLate,
    ConsentRequestInvalid,
    ConsentWordsNotRevealed,
    StatementTemplateInvalid,
)

# The words must be revealed within this time of issue; the recording is then due within the
# deployment's recording window after the reveal.
CHALLENGE_TTL = timedelta(minutes=10)
GRANTEE_KINDS = ("tenant", "subject")
# Uses are counted in an INTEGER column.
MAX_USES_LIMIT = 1_000_000_000


@dataclass(frozen=True)
class OwnerIdentity:
    """Who consents, from the verified token: issuer, subject, display name."""

    iss: str
    sub: str
    display_name: str


def _clean_list(values: list[str], *, what: str) -> list[str]:
    cleaned = [str(v).strip() for v in values or [] if str(v).strip()]
    if not cleaned:
        raise ConsentRequestInvalid(f"at least one {what} is required")
    if len(set(cleaned)) != len(cleaned) or any(len(v) > 100 for v in cleaned):
        raise ConsentRequestInvalid(f"{what}s must be distinct and short")
    return cleaned


def create_challenge(
    session: Session,
    *,
    owner: OwnerIdentity,
    grantee_kind: str,
    grantee_id: str,
    grantee_name: str,
    purposes: list[str],
    languages: list[str],
    not_before: datetime,
    not_after: datetime,
    max_uses: int,
    now: datetime,
    statement_language: str = "en",
    templates: dict[str, str] | None = None,
    phrase_words: int = MIN_PHRASE_WORDS,
) -> tuple[ConsentChallenge, Statement]:
    """Issue a single-use challenge whose words may be revealed within ten minutes; returns the
    row and its statement (the caller shows only ``statement_preview`` of it before the reveal)."""
    if grantee_kind not in GRANTEE_KINDS:
        raise ConsentRequestInvalid(f"grantee kind must be one of {GRANTEE_KINDS}")
    if not grantee_id.strip() or not owner.iss or not owner.sub:
        raise ConsentRequestInvalid("grantee id, owner issuer and owner subject are required")
    purposes = _clean_list(purposes, what="purpose")
    languages = _clean_list(languages, what="language")
    if not_before.tzinfo is None or not_after.tzinfo is None or now.tzinfo is None:
        raise ConsentRequestInvalid("validity times must be timezone-aware")
    if not_after <= not_before or not_after <= now:
        raise ConsentRequestInvalid("the validity window must end after it starts and after now")
    if isinstance(max_uses, bool) or not isinstance(max_uses, int) or not 0 < max_uses <= MAX_USES_LIMIT:
        raise ConsentRequestInvalid(f"max_uses must be an integer in 1..{MAX_USES_LIMIT}")
    template = (templates or DEFAULT_TEMPLATES).get(statement_language)
    if template is None:
        raise StatementTemplateInvalid(f"no statement template for language {statement_language!r}")
    statement = render_statement(
        template=template,
        owner_name=owner.display_name,
        grantee_name=grantee_name,
        purposes=purposes,
        phrase=random_phrase(word_count=phrase_words),
    )
    challenge = ConsentChallenge(
        id=secrets.token_hex(16),
        owner_iss=owner.iss,
        owner_sub=owner.sub,
        owner_name=owner.display_name.strip(),
        grantee_kind=grantee_kind,
        grantee_id=grantee_id,
        grantee_name=grantee_name.strip(),
        purposes=purposes,
        languages=languages,
        not_before=not_before,
        not_after=not_after,
        max_uses=max_uses,
        statement_language=statement_language,
        statement_text=statement.text,
        phrase=" ".join(statement.phrase),
        created_at=now,
        expires_at=now + CHALLENGE_TTL,
    )
    session.add(challenge)
    session.flush()
    return challenge, statement


def statement_of(challenge: ConsentChallenge, *, templates: dict[str, str] | None = None) -> Statement:
    """Re-render the statement the challenge was issued with (same words, same phrase)."""
    template = (templates or DEFAULT_TEMPLATES).get(challenge.statement_language)
    if template is None:
        raise StatementTemplateInvalid(f"no statement template for language {challenge.statement_language!r}")
    statement = render_statement(
        template=template,
        owner_name=challenge.owner_name,
        grantee_name=challenge.grantee_name,
        purposes=challenge.purposes,
        phrase=tuple(challenge.phrase.split()),
    )
    if statement.text != challenge.statement_text:
        # The template changed since issue: the owner read a different text than we would check.
        raise StatementTemplateInvalid("the statement template changed since this challenge was issued")
    return statement


def statement_preview(statement: Statement, *, placeholder: str = "…") -> str:
    """The statement's fixed text with the confirmation words left out (the phrase ends it)."""
    head, tail = statement.text.rsplit(" ".join(statement.phrase), 1)
    return head + placeholder + tail


def _owned_challenge(session: Session, *, challenge_id: str, owner_iss: str, owner_sub: str) -> ConsentChallenge:
    challenge = session.get(ConsentChallenge, challenge_id)
    if challenge is None:
        raise ChallengeNotFound("no such challenge")
    if (challenge.owner_iss, challenge.owner_sub) != (owner_iss, owner_sub):
        raise ChallengeNotYours("this challenge was issued to another identity")
    return challenge


@dataclass(frozen=True)
class Reveal:
    """A revealed challenge: its statement, when the words were first shown, and whether this
    reveal was that first one."""

    challenge: ConsentChallenge
    statement: Statement
    revealed_at: datetime
    opened: bool


def reveal_challenge(
    session: Session,
    *,
    challenge_id: str,
    owner_iss: str,
    owner_sub: str,
    now: datetime,
    templates: dict[str, str] | None = None,
) -> Reveal:
    """Record when the owner was first shown the confirmation words (the recording window opens).

    Revealing again shows the same words and keeps the first time: the window never restarts.
    A used or expired challenge shows nothing, nor does one whose statement is not of
    ``templates`` (``StatementTemplateInvalid``).
    """
    challenge = _owned_challenge(session, challenge_id=challenge_id, owner_iss=owner_iss, owner_sub=owner_sub)
    statement = statement_of(challenge, templates=templates)
    if challenge.used_at is not None:
        raise ChallengeAlreadyUsed("this challenge was already used")
    if challenge.revealed_at is not None:
        return Reveal(challenge=challenge, statement=statement, revealed_at=challenge.revealed_at, opened=False)
    if now >= challenge.expires_at:
        raise ChallengeExpired("this challenge has expired; ask for a new one")
    # Conditional, so two concurrent reveals agree on one start of the window.
    result = session.execute(
        update(ConsentChallenge)
        .where(
            ConsentChallenge.id == challenge_id,
            ConsentChallenge.revealed_at.is_(None),
            ConsentChallenge.used_at.is_(None),
            ConsentChallenge.expires_at > now,
        )
        .values(revealed_at=now)
        .execution_options(synchronize_session=False)
    )
    session.refresh(challenge)
    if challenge.revealed_at is None:  # used or expired between the read and the update
        raise ChallengeAlreadyUsed("this challenge was already used")
    opened = cast("CursorResult[Any]", result).rowcount == 1
    return Reveal(challenge=challenge, statement=statement, revealed_at=challenge.revealed_at, opened=opened)


def check_recording_window(challenge: ConsentChallenge, *, received_at: datetime, window: timedelta) -> None:
    """A recording is a live reading only if its words were revealed and it arrived within
    ``window`` of the reveal (both times taken by the server)."""
    if challenge.revealed_at is None:
        if received_at >= challenge.expires_at:
            raise ChallengeExpired("this challenge has expired; ask for a new one")
        raise ConsentWordsNotRevealed(
            "the confirmation words of this challenge were never revealed: reveal them, then record"
        )
    if received_at > challenge.revealed_at + window:
        raise ConsentRecordingLate(
            f"the recording arrived more than {window.total_seconds():g} s after the confirmation words "
            "were revealed; ask for a new challenge"
        )


def consume_challenge(
    session: Session,
    *,
    challenge_id: str,
    owner_iss: str,
    owner_sub: str,
    now: datetime,
    recording_window: timedelta | None = None,
) -> ConsentChallenge:
    """Mark the challenge used, exactly once, by its own owner, before it expires.

    With ``recording_window``, the words must have been revealed and ``now`` (when the recording
    arrived) must lie within the window after the reveal; the ten minutes then only bound the
    reveal. Refusals change nothing: a late challenge stays late, an unrevealed one unheard.

    One conditional UPDATE decides, so two concurrent enrollments with the same challenge cannot
    both proceed. The gateway should commit this even when a later check fails, so a challenge
    cannot be retried against the recognizer with many recordings.
    """
    challenge = _owned_challenge(session, challenge_id=challenge_id, owner_iss=owner_iss, owner_sub=owner_sub)
    if challenge.used_at is not None:
        raise ChallengeAlreadyUsed("this challenge was already used")
    if recording_window is None:
        if now >= challenge.expires_at:
            raise ChallengeExpired("this challenge has expired; ask for a new one")
        still_valid = ConsentChallenge.expires_at > now
    else:
        check_recording_window(challenge, received_at=now, window=recording_window)
        still_valid = ConsentChallenge.revealed_at >= now - recording_window
    result = session.execute(
        update(ConsentChallenge)
        .where(ConsentChallenge.id == challenge_id, ConsentChallenge.used_at.is_(None), still_valid)
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    if cast("CursorResult[Any]", result).rowcount != 1:
        raise ChallengeAlreadyUsed("this challenge was already used")
    session.refresh(challenge)
    return challenge
