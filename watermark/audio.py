"""Input checks and resampling shared by every scheme.

Every public entry point takes ``sample_rate`` explicitly and goes through these checks, so a
caller gets one specific error for bad input instead of a silent wrong answer.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from scipy.signal import resample_poly

from .errors import InvalidAudio

MIN_SAMPLE_RATE = 8_000
MAX_SAMPLE_RATE = 48_000
MIN_SECONDS = 1.0
MAX_SECONDS = 600.0


def _check_rate(sample_rate: int) -> int:
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)):
        raise InvalidAudio(f"sample_rate must be an integer number of Hz, got {sample_rate!r}")
    if not MIN_SAMPLE_RATE <= int(sample_rate) <= MAX_SAMPLE_RATE:
        raise InvalidAudio(f"sample rate {sample_rate} Hz is outside {MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz")
    return int(sample_rate)


def _check_samples(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    if audio.size == 0:
        raise InvalidAudio("audio is empty")
    if not np.issubdtype(audio.dtype, np.floating):
        raise InvalidAudio(f"audio must be floating point in [-1, 1], got dtype {audio.dtype}")
    if not np.all(np.isfinite(audio)):
        raise InvalidAudio("audio contains NaN or infinite samples")
    seconds = audio.shape[-1] / sample_rate
    if seconds < MIN_SECONDS:
        raise InvalidAudio(f"audio is {seconds:.3f} s long; at least {MIN_SECONDS:.0f} s is needed")
    if seconds > MAX_SECONDS + 1e-9:
        raise InvalidAudio(f"audio is {seconds:.1f} s long; at most {MAX_SECONDS:.0f} s is accepted")
    return audio


def mono_for_embedding(audio: np.ndarray, *, sample_rate: int) -> tuple[np.ndarray, int]:
    """Validate audio to be marked: mono only, because a mark on a down-mix could not be written back."""
    sample_rate = _check_rate(sample_rate)
    audio = np.asarray(audio)
    if audio.ndim == 2 and 1 in audio.shape:
        audio = audio.reshape(-1)
    if audio.ndim != 1:
        raise InvalidAudio(f"embedding takes mono audio (one channel), got shape {audio.shape}")
    return _check_samples(audio, sample_rate).astype(np.float64), sample_rate


def mono_for_detection(audio: np.ndarray, *, sample_rate: int) -> tuple[np.ndarray, int]:
    """Validate audio to be examined; multi-channel audio is down-mixed (channels first or last)."""
    sample_rate = _check_rate(sample_rate)
    audio = np.asarray(audio)
    if audio.ndim == 2:
        if audio.shape[0] > 8 and audio.shape[1] <= 8:  # (samples, channels) as soundfile returns it
            audio = audio.T
        if audio.shape[0] > 8:
            raise InvalidAudio(f"cannot tell channels from samples in shape {audio.shape}")
        audio = _check_samples(audio, sample_rate).mean(axis=0)
    elif audio.ndim != 1:
        raise InvalidAudio(f"audio must be 1-D (mono) or 2-D (channels), got shape {audio.shape}")
    return _check_samples(audio, sample_rate).astype(np.float64), sample_rate


def resample(audio: np.ndarray, *, from_rate: int, to_rate: int) -> np.ndarray:
    """Polyphase resampling with a rational ratio (deterministic, no FFT length effects)."""
    if from_rate == to_rate:
        return np.asarray(audio, dtype=np.float64)
    ratio = Fraction(to_rate, from_rate)
    return np.asarray(resample_poly(audio, ratio.numerator, ratio.denominator), dtype=np.float64)
