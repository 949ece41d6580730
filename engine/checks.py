"""Input and output checks shared by every engine.

Inputs are refused with a specific error before any engine work starts; outputs are refused
before the pipeline can watermark or release them (fail closed on silence, NaN, odd lengths).
"""

from __future__ import annotations

import hashlib
import math
import unicodedata
from collections.abc import Iterable, Sequence

import numpy as np

from engine.errors import (
    EngineOutputInvalid,
    LanguageUnsupported,
    ReferenceInvalid,
    TextEmpty,
    TextTooLong,
)
from engine.interface import EngineAudio, ReferenceClip

MAX_TEXT_CHARS = 2000
ALLOWED_SAMPLE_RATES = frozenset({8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000})
MIN_REFERENCE_S = 1.0
MIN_VOICED_S = 0.5
MAX_REFERENCE_S = 60.0
MAX_REFERENCES = 8
# Below this RMS (about -60 dBFS) a clip carries no usable voice.
SILENCE_RMS = 1e-3


def check_text(text: object, *, max_chars: int = MAX_TEXT_CHARS) -> str:
    """Return the text with Unicode normalised and whitespace collapsed, or raise."""
    if not isinstance(text, str):
        raise TextEmpty("text must be a string")
    cleaned = unicodedata.normalize("NFKC", text)
    # Control characters have no pronunciation and can smuggle markup into engines.
    cleaned = "".join(" " if unicodedata.category(ch).startswith("C") else ch for ch in cleaned)
    cleaned = " ".join(cleaned.split())
    if not any(ch.isalnum() for ch in cleaned):
        raise TextEmpty("text has nothing to speak")
    if len(cleaned) > max_chars:
        raise TextTooLong(f"text has {len(cleaned)} characters, at most {max_chars} are allowed")
    return cleaned


def check_language(language: object, *, supported: Iterable[str]) -> str:
    """Normalise 'en-US' / 'EN' to 'en' and refuse languages the engine does not speak."""
    if not isinstance(language, str) or not language.strip():
        raise LanguageUnsupported("language must be a language code such as 'en'")
    code = language.strip().lower().replace("_", "-").split("-")[0]
    allowed = frozenset(supported)
    if code not in allowed:
        raise LanguageUnsupported(f"language {language!r} is not supported; supported: {sorted(allowed)}")
    return code


def check_reference(clip: ReferenceClip) -> np.ndarray:
    """Validate one reference clip and return its samples as float64 mono."""
    if not isinstance(clip.sample_rate, int) or clip.sample_rate not in ALLOWED_SAMPLE_RATES:
        raise ReferenceInvalid(f"sample rate {clip.sample_rate!r} is not one of {sorted(ALLOWED_SAMPLE_RATES)}")
    audio = np.asarray(clip.audio)
    if audio.ndim != 1:
        raise ReferenceInvalid(f"reference must be mono (1-D), got shape {audio.shape}")
    if not np.issubdtype(audio.dtype, np.floating):
        raise ReferenceInvalid(f"reference must be float samples in [-1, 1], got {audio.dtype}")
    duration = audio.size / clip.sample_rate
    if duration < MIN_REFERENCE_S:
        raise ReferenceInvalid(f"reference is {duration:.2f} s long, at least {MIN_REFERENCE_S} s is needed")
    if duration > MAX_REFERENCE_S:
        raise ReferenceInvalid(f"reference is {duration:.1f} s long, at most {MAX_REFERENCE_S} s is allowed")
    if not np.all(np.isfinite(audio)):
        raise ReferenceInvalid("reference contains NaN or infinite samples")
    if np.max(np.abs(audio)) > 1.0 + 1e-6:
        raise ReferenceInvalid("reference samples exceed [-1, 1]")
    audio = audio.astype(np.float64)
    if float(np.sqrt(np.mean(audio**2))) < SILENCE_RMS:
        raise ReferenceInvalid("reference is silent")
    voiced = _active_seconds(audio, clip.sample_rate)
    if voiced < MIN_VOICED_S:
        raise ReferenceInvalid(f"reference has {voiced:.2f} s of sound, at least {MIN_VOICED_S} s is needed")
    return audio


def check_references(references: Sequence[ReferenceClip]) -> list[np.ndarray]:
    if not isinstance(references, Sequence) or isinstance(references, (str, bytes)) or not references:
        raise ReferenceInvalid("at least one reference clip is needed")
    if len(references) > MAX_REFERENCES:
        raise ReferenceInvalid(f"at most {MAX_REFERENCES} reference clips are allowed")
    return [check_reference(clip) for clip in references]


def references_sha256(references: Sequence[ReferenceClip]) -> str:
    """Digest of the reference PCM (16-bit, with rates), so a profile names what it came from."""
    digest = hashlib.sha256()
    for clip in references:
        pcm = np.clip(np.asarray(clip.audio, dtype=np.float64), -1.0, 1.0)
        digest.update(str(clip.sample_rate).encode() + b":")
        digest.update((pcm * 32767.0).round().astype("<i2").tobytes())
    return digest.hexdigest()


def _active_seconds(audio: np.ndarray, sample_rate: int) -> float:
    """Seconds of 20 ms frames within 35 dB of the loudest frame and above the silence floor."""
    frame = max(1, sample_rate // 50)
    count = audio.size // frame
    if count == 0:
        return 0.0
    energy = np.sqrt(np.mean(audio[: count * frame].reshape(count, frame) ** 2, axis=1))
    threshold = max(SILENCE_RMS, float(energy.max()) * 10 ** (-35 / 20))
    return float(np.sum(energy > threshold)) * frame / sample_rate


# Speech rates seen across engines are 0.04–0.12 s per character of normalised text; the
# bounds below are several times wider so only broken output (truncation, runaway generation)
# trips them, not a slow speaker.
MIN_SECONDS_PER_CHAR = 0.015
MAX_SECONDS_PER_CHAR = 0.35
LENGTH_SLACK_S = 1.0


def check_output(audio: EngineAudio, *, spoken_chars: int, speed: float = 1.0) -> EngineAudio:
    """Raise ``EngineOutputInvalid`` unless the audio is plausible speech for the text."""
    samples = audio.samples
    if not isinstance(audio.sample_rate, int) or not 8000 <= audio.sample_rate <= 48000:
        raise EngineOutputInvalid(f"engine returned sample rate {audio.sample_rate!r}")
    if samples.ndim != 1 or samples.size == 0:
        raise EngineOutputInvalid(f"engine returned audio of shape {samples.shape}")
    if not np.all(np.isfinite(samples)):
        raise EngineOutputInvalid("engine returned NaN or infinite samples")
    if float(np.mean(np.abs(samples) > 1.0)) > 0.001:
        raise EngineOutputInvalid("engine returned audio beyond full scale")
    rms = float(np.sqrt(np.mean(samples.astype(np.float64) ** 2)))
    if rms < SILENCE_RMS:
        raise EngineOutputInvalid("engine returned silence")
    active = _active_seconds(samples.astype(np.float64), audio.sample_rate)
    duration = audio.duration_s
    if active < 0.25 * min(duration, 1.0):
        raise EngineOutputInvalid(f"engine returned {active:.2f} s of sound in {duration:.2f} s of audio")
    chars = max(1, spoken_chars)
    low = chars * MIN_SECONDS_PER_CHAR / speed
    high = chars * MAX_SECONDS_PER_CHAR / speed + LENGTH_SLACK_S
    if not low <= duration <= high or math.isnan(duration):
        raise EngineOutputInvalid(
            f"engine returned {duration:.2f} s for {chars} characters; expected {low:.2f}–{high:.2f} s"
        )
    return audio
