"""Request bodies and answers of the enrollment routes; a challenge as its owner sees it."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from gateway.enrollment.service import ChallengeTerms, IssuedChallenge, RevealedChallenge
from gateway.errors import ChallengeWrongKind
from gateway.shared.schemas import DateTimeText, RequestBody, ResponseModel, Timestamp
from gateway.voices.schemas import VoiceView
from policy import errors as policy
from policy.consent.challenges import statement_preview

IDENTIFIER = r"^[A-Za-z0-9._:@|+=~#-]{1,200}$"
WORD = r"^[a-z][a-z0-9_]{0,31}$"
LANGUAGE = r"^[a-z]{2,3}(-[A-Za-z]{2,4})?$"
# Voice, consent and challenge ids are 16 random bytes in hex; anything else is refused before a query.
HEX_ID = r"^[0-9a-f]{32}$"

# What reading a challenge aloud can be refused for (gateway/enrollment/spoken.py), on every
# route that takes such a recording: enrollment, an exception to the protected-speaker list, opt-out.
SPOKEN_CHALLENGE_ERRORS = (
    policy.ChallengeNotFound,
    policy.ChallengeExpired,
    policy.ChallengeAlreadyUsed,
    policy.ChallengeNotYours,
    ChallengeWrongKind,
    policy.StatementTemplateInvalid,
    policy.SpeechRecognitionFailed,
    policy.StatementNotSpoken,
    policy.ChallengePhraseMismatch,
    policy.ConsentRecordingSynthetic,
    policy.ConsentRecordingReplayed,
)


class ChallengeBody(RequestBody):
    grantee_kind: str = Field(pattern=r"^(tenant|subject)$")
    grantee_id: str = Field(pattern=IDENTIFIER)
    grantee_name: str = Field(min_length=1, max_length=100)
    purposes: list[Annotated[str, Field(pattern=WORD)]] = Field(min_length=1, max_length=10)
    languages: list[Annotated[str, Field(pattern=LANGUAGE)]] = Field(min_length=1, max_length=10)
    not_before: DateTimeText | None = None
    not_after: DateTimeText
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


class IssuedChallengeView(ResponseModel):
    """An opt-out challenge: the statement to read aloud, its random phrase, its deadline."""

    challenge_id: str
    statement: str
    phrase: list[str]
    expires_at: Timestamp


class ConsentChallengeView(ResponseModel):
    """A consent challenge before its reveal: the statement without its words, and the reveal's deadline."""

    challenge_id: str
    statement_preview: str
    phrase_words: int
    expires_at: Timestamp


class RevealedChallengeView(ResponseModel):
    """The whole statement with its words, and when the recording must have arrived."""

    challenge_id: str
    statement: str
    phrase: list[str]
    recording_due_by: Timestamp


class EnrolledVoice(VoiceView):
    """The new voice, its consent and how well the recordings matched."""

    consent_id: str
    # The worst reference against the consent recording, on the list's calibrated scale.
    speaker_score: float
    speaker_match_probability: float
    statement_score: float
