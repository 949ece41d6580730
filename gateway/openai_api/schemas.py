"""OpenAI's request and response bodies for the speech routes, and its error body."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from gateway.synthesis.schemas import IDENTIFIER_PATTERN, WORD_PATTERN

LANGUAGE_PATTERN = r"^[a-z]{2,3}(-[A-Za-z]{2,4})?$"

# OpenAI's limit on `input` (clonegate's own text rules and limits apply as well).
MAX_INPUT_CHARS = 4096
# Aliases and voice ids share the identifier alphabet; OpenAI's built-in names fit it too.
VOICE_PATTERN = IDENTIFIER_PATTERN

ResponseFormat = Literal["mp3", "opus", "aac", "flac", "wav", "pcm"]


class VoiceRef(BaseModel):
    """OpenAI's object form of a custom voice: `{"id": "..."}`."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=VOICE_PATTERN)


class SpeechBody(BaseModel):
    """`POST /v1/audio/speech` as OpenAI defines it, plus clonegate's optional `purpose` (sent
    with the openai client's `extra_body`)."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, max_length=64)
    input: str = Field(min_length=1, max_length=MAX_INPUT_CHARS)
    voice: Annotated[str, Field(pattern=VOICE_PATTERN)] | VoiceRef = Field(
        description="a clonegate voice id, a voice alias of the caller's tenant, or {'id': voice id}",
        union_mode="left_to_right",
    )
    response_format: ResponseFormat = "mp3"
    speed: float = Field(default=1.0, ge=0.25, le=4.0, allow_inf_nan=False)
    instructions: str | None = Field(default=None, max_length=MAX_INPUT_CHARS)
    stream_format: Literal["audio", "sse"] | None = Field(
        default=None, description="unset: the whole file at once; audio: chunked bytes; sse: speech.audio.* events"
    )
    purpose: str | None = Field(default=None, pattern=WORD_PATTERN, description="clonegate: what the speech is for")
    language: str = Field(default="en", pattern=LANGUAGE_PATTERN, description="clonegate: the language consented to")

    @property
    def voice_name(self) -> str:
        return self.voice.id if isinstance(self.voice, VoiceRef) else self.voice


class OpenAIError(BaseModel):
    message: str
    type: str
    code: str
    param: str | None = None


class OpenAIErrorBody(BaseModel):
    """Every error of the OpenAI routes: the openai client reads `error` and raises by status."""

    error: OpenAIError


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class VoiceScope(BaseModel):
    """What the caller may use a voice for: a consent that names it, or the owner's own use."""

    kind: Literal["owner", "consent"]
    consent_id: str | None = None
    purposes: list[str] | None = None  # None: any purpose (the owner's own voice)
    languages: list[str] | None = None
    not_before: str | None = None
    not_after: str | None = None
    uses: int | None = None
    max_uses: int | None = None


class VoiceCard(BaseModel):
    id: str
    name: str
    aliases: list[str]
    scopes: list[VoiceScope]


class VoiceList(BaseModel):
    voices: list[VoiceCard]
