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
    ConsentRequestInvalid,
    StatementTemplateInvalid,
)

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
    """Issue a single-use challenge valid for ten minutes; returns the row and its statement."""
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


def consume_challenge(
    session: Session, *, challenge_id: str, owner_iss: str, owner_sub: str, now: datetime
) -> ConsentChallenge:
    """Mark the challenge used, exactly once, by its own owner, before it expires.

    One conditional UPDATE decides, so two concurrent enrollments with the same challenge cannot
    both proceed. The gateway should commit this even when a later check fails, so a challenge
    cannot be retried against the recognizer with many recordings.
    """
    challenge = session.get(ConsentChallenge, challenge_id)
    if challenge is None:
        raise ChallengeNotFound(f"no challenge {challenge_id}")
    if (challenge.owner_iss, challenge.owner_sub) != (owner_iss, owner_sub):
        raise ChallengeNotYours("this challenge was issued to another identity")
    if challenge.used_at is not None:
        raise ChallengeAlreadyUsed("this challenge was already used")
    if now >= challenge.expires_at:
        raise ChallengeExpired("this challenge has expired; ask for a new one")
    result = session.execute(
        update(ConsentChallenge)
        .where(
            ConsentChallenge.id == challenge_id,
            ConsentChallenge.used_at.is_(None),
            ConsentChallenge.expires_at > now,
        )
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    if cast("CursorResult[Any]", result).rowcount != 1:
        raise ChallengeAlreadyUsed("this challenge was already used")
    session.refresh(challenge)
    return challenge
