"""The synchronisation hypotheses the keyed detector searches: how the input may have been warped.

Three families, each undone on the detector's own features (``features.Analysis``):

- tempo: time stretched by ``time_scale`` with pitch kept (sox/ffmpeg ``tempo``, WSOLA);
- pitch: frequencies scaled by ``freq_scale`` with duration kept (sox ``pitch``);
- speed: resampled playback, time by ``1/s`` and frequencies by ``s`` together (sox ``speed``).

Grid steps come from how far a hypothesis may miss and still see most of the mark: within an 8 s
chunk a time-scale error of 0.5 % costs about a fifth of the statistic, a frequency-scale error of
1 % about a tenth (measured on German clips the benchmark does not use). Steps are uniform on a
log scale. Every hypothesis on the grid counts in the false-positive bound, whether or not the
search reaches it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TEMPO_RANGE = (0.75, 1.0 / 0.75)  # attacked duration / original, pitch kept
SPEED_RANGE = (0.85, 1.15)  # playback speed: duration / s, frequencies * s
PITCH_CENTS = 300.0  # +-3 semitones, duration kept
TIME_STEP = 0.006  # log-scale step of the time-scale families
PITCH_STEP_CENTS = 25.0


@dataclass(frozen=True)
class Hypothesis:
    time_scale: float  # attacked duration / original duration
    freq_scale: float  # attacked frequency / original frequency
    family: str = "none"  # "none", "tempo", "pitch" or "speed"

    @property
    def describe(self) -> dict[str, float | str]:
        """The warp this hypothesis undoes, in the units tools use for it."""
        if self.family == "tempo":
            return {"family": "tempo", "tempo": round(1.0 / self.time_scale, 4)}
        if self.family == "pitch":
            return {"family": "pitch", "cents": round(1200.0 * float(np.log2(self.freq_scale)), 1)}
        if self.family == "speed":
            return {"family": "speed", "speed": round(self.freq_scale, 4)}
        return {"family": "none"}


IDENTITY = Hypothesis(1.0, 1.0)


def _log_steps(low: float, high: float, step: float) -> list[float]:
    """Values spaced by ``step`` on a log scale covering [low, high], 1 excluded, nearest to 1 first."""
    k_low = int(np.floor(np.log(low) / step + 1e-9))
    k_high = int(np.ceil(np.log(high) / step - 1e-9))
    ks = sorted((k for k in range(k_low, k_high + 1) if k != 0), key=lambda k: (abs(k), k))
    return [float(np.exp(k * step)) for k in ks]


def search_grid(
    *,
    tempo: tuple[float, float] = TEMPO_RANGE,
    speed: tuple[float, float] = SPEED_RANGE,
    pitch_cents: float = PITCH_CENTS,
    time_step: float = TIME_STEP,
    pitch_step_cents: float = PITCH_STEP_CENTS,
) -> list[Hypothesis]:
    """The identity first, then every warp hypothesis, each family from small warps to large."""
    grid = [IDENTITY]
    grid += [Hypothesis(a, 1.0, "tempo") for a in _log_steps(tempo[0], tempo[1], time_step)]
    grid += [Hypothesis(1.0 / s, s, "speed") for s in _log_steps(speed[0], speed[1], time_step)]
    cents_step = pitch_step_cents * np.log(2.0) / 1200.0
    scale = 2.0 ** (pitch_cents / 1200.0)
    grid += [Hypothesis(1.0, f, "pitch") for f in _log_steps(1.0 / scale, scale, cents_step)]
    return grid
