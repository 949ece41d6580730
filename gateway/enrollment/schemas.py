"""Request bodies and answers of the enrollment routes; a challenge as its owner sees it."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from gateway.enrollment.service import ChallengeTerms, IssuedChallenge
from gateway.errors import ChallengeWrongKind
from gateway.shared.schemas import DateTimeText, RequestBody, ResponseModel, Timestamp
from gateway.voices.schemas import VoiceView
from policy import errors as policy

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
    return {
        "challenge_id": issued.challenge.id,
        "statement": issued.statement.text,
        "phrase": list(issued.statement.phrase),
        "expires_at": issued.challenge.expires_at.isoformat(),
    }


class IssuedChallengeView(ResponseModel):
    """A consent (or opt-out) challenge: the statement to read aloud, its random phrase, its deadline."""

    challenge_id: str
    statement: str
    phrase: list[str]
    expires_at: Timestamp


class EnrolledVoice(VoiceView):
    """The new voice, its consent and how well the recordings matched."""

    consent_id: str
    speaker_similarity: float
    statement_score: float
