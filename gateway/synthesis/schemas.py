"""The synthesis request body of `POST /v1/synthesize`."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from gateway.shared.schemas import RequestBody
from gateway.synthesis.steps import SynthesisRequest

# Identifiers are opaque tokens; anything else is refused before it reaches the database or log.
IDENTIFIER_PATTERN = r"^[A-Za-z0-9._:-]{1,64}$"
WORD_PATTERN = r"^[a-z][a-z0-9_-]{0,31}$"


class SynthesisBody(RequestBody):
    voice_id: str = Field(pattern=IDENTIFIER_PATTERN)
    text: str = Field(min_length=1, max_length=100_000)
    language: str = Field(default="en", pattern=r"^[a-z]{2,3}(-[A-Za-z]{2,4})?$")
    purpose: str = Field(pattern=WORD_PATTERN)
    format: Literal["wav", "flac", "mp3", "ogg"] = "wav"
    speed: float = Field(default=1.0, ge=0.5, le=2.0, allow_inf_nan=False)
    pitch_semitones: float = Field(default=0.0, ge=-12.0, le=12.0, allow_inf_nan=False)

    def synthesis_request(self) -> SynthesisRequest:
        return SynthesisRequest(
            voice_id=self.voice_id,
            text=self.text,
            language=self.language,
            purpose=self.purpose,
            speed=self.speed,
            pitch_semitones=self.pitch_semitones,
        )
