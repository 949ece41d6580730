"""The stand-in models' "speech": a voiced buzz 0.07 s per character, so length checks apply."""

from __future__ import annotations

import io

import numpy as np
import soundfile as sf


def buzz(text: str, rate: int, *, seconds_per_char: float = 0.07) -> np.ndarray:
    t = np.arange(int(seconds_per_char * len(text) * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * 140 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t))).astype(np.float32)


def wav_bytes(audio: np.ndarray, rate: int) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, audio, rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()
