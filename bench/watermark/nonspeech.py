"""Unmarked non-speech segments for the false-positive count: tones, chords, noises, sweeps, clicks.

Generated, seeded, 2-5 s at 16 or 24 kHz. The four-note amplitude-modulated chords are the
audio PerTh's detector was seen to call marked. No registry package installed here ships music
recordings, so music is represented only by these synthetic tonal signals.
"""

from __future__ import annotations

import numpy as np

KINDS = (
    "tone",
    "chord",
    "am_chord",
    "harmonic_vibrato",
    "white_noise",
    "pink_noise",
    "brown_noise",
    "sweep",
    "clicks",
    "dither",
)


def _coloured(rng: np.random.Generator, n: int, exponent: float) -> np.ndarray:
    spectrum = np.fft.rfft(rng.normal(0.0, 1.0, n))
    spectrum[1:] /= np.arange(1, spectrum.size) ** (exponent / 2)
    spectrum[0] = 0.0
    noise = np.fft.irfft(spectrum, n=n)
    return noise / (np.max(np.abs(noise)) + 1e-12)


def segment(kind: str, *, seed: int) -> tuple[np.ndarray, int]:
    rng = np.random.default_rng(seed)
    rate = int(rng.choice([16_000, 24_000]))
    n = int(rng.uniform(2.0, 5.0) * rate)
    t = np.arange(n) / rate
    level = 10 ** rng.uniform(-2.0, -0.5)
    if kind == "tone":
        x = np.sin(2 * np.pi * rng.uniform(80, 6000) * t)
    elif kind in ("chord", "am_chord"):
        notes = 220 * 2 ** (rng.integers(0, 24, 4) / 12)
        x = sum(np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi)) for f in notes) / 4
        if kind == "am_chord":
            x = x * (1 + 0.5 * np.sin(2 * np.pi * rng.uniform(2, 8) * t))
    elif kind == "harmonic_vibrato":  # a sung or bowed note: harmonics of a slowly wavering pitch
        f0 = rng.uniform(100, 400) * (1 + 0.01 * np.sin(2 * np.pi * rng.uniform(4, 7) * t))
        phase = 2 * np.pi * np.cumsum(f0) / rate
        x = sum(np.sin(k * phase) / k for k in range(1, 12) if k * f0.max() < rate / 2)
    elif kind == "white_noise":
        x = rng.normal(0.0, 0.3, n)
    elif kind == "pink_noise":
        x = _coloured(rng, n, 1.0)
    elif kind == "brown_noise":
        x = _coloured(rng, n, 2.0)
    elif kind == "sweep":
        f_start, f_end = rng.uniform(50, 500), rng.uniform(2000, 7500)
        x = np.sin(
            2 * np.pi * f_start * (t[-1] / np.log(f_end / f_start)) * (np.exp(t / t[-1] * np.log(f_end / f_start)) - 1)
        )
    elif kind == "clicks":
        x = np.zeros(n)
        x[rng.integers(0, n, int(rng.uniform(5, 40) * n / rate))] = rng.choice([-1.0, 1.0])
    elif kind == "dither":  # the floor of a silent 16-bit recording: left at its own level
        return rng.uniform(-1.0, 1.0, n) * 2.0**-15 * rng.uniform(1.0, 4.0), rate
    else:
        raise ValueError(kind)
    x = np.asarray(x, dtype=np.float64)
    return np.clip(level * x / (np.max(np.abs(x)) + 1e-12), -1.0, 1.0), rate


def specs(count: int, *, seed: int = 20261201) -> list[tuple[str, int]]:
    """``count`` (kind, seed) pairs, the kinds in turn."""
    return [(KINDS[i % len(KINDS)], seed + i) for i in range(count)]
