"""Request bodies of the enrollment routes and what a challenge looks like to its owner."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, Field

from gateway.enrollment.service import ChallengeTerms, IssuedChallenge, RevealedChallenge
from policy.consent.challenges import statement_preview

IDENTIFIER = r"^[A-Za-z0-9._:@|+=~#-]{1,200}$"
WORD = r"^[a-z][a-z0-9_]{0,31}$"
LANGUAGE = r"^[a-z]{2,3}(-[A-Za-z]{2,4})?$"
# Voice, consent and challenge ids are 16 random bytes in hex; anything else is refused before a query.
HEX_ID = r"^[0-9a-f]{32}$"


class ChallengeBody(BaseModel):
    grantee_kind: str = Field(pattern=r"^(tenant|subject)$")
    grantee_id: str = Field(pattern=IDENTIFIER)
    grantee_name: str = Field(min_length=1, max_length=100)
    purposes: list[Annotated[str, Field(pattern=WORD)]] = Field(min_length=1, max_length=10)
    languages: list[Annotated[str, Field(pattern=LANGUAGE)]] = Field(min_length=1, max_length=10)
    not_before: datetime | None = None
    not_after: datetime
    max_uses: int = Field(ge=1, le=1_000_000_000)

    def terms(self) -> ChallengeTerms:
        return ChallengeTerms(**self.model_dump())


def challenge_dict(issued: IssuedChallenge) -> dict[str, Any]:
    """The statement without its confirmation words: they are shown by the reveal only."""
    return {
        "challenge_id": issued.challenge.id,
        "statement_preview": statement_preview(issued.statement),
        "phrase_words": len(issued.statement.phrase),
        "expires_at": issued.challenge.expires_at.isoformat(),
    }


def revealed_dict(revealed: RevealedChallenge) -> dict[str, Any]:
    return {
        "challenge_id": revealed.challenge.id,
        "statement": revealed.statement.text,
        "phrase": list(revealed.statement.phrase),
        "recording_due_by": revealed.recording_due_by.isoformat(),
    }
