"""Speaker adaptation with the WORLD vocoder (pyworld): pure functions on numpy arrays.

Source speech (the Piper voice) is decomposed into F0, spectral envelope and aperiodicity, and
moved toward a reference speaker in four steps, each cheap enough for real time on one core:

1. F0 mapping: log-F0 is standardised with the source statistics and rescaled to the reference
   mean and spread (plus an optional user pitch shift).
2. Frequency warping of the log envelope by a factor ``warp`` (vocal-tract length).
3. Long-term envelope matching: a smooth correction (low-order cepstrum) that moves the mean
   voiced envelope of the warped source onto the reference's.
4. Parallel conversion (optional, ``mapping_strength``): a per-frame cepstral offset learned
   from the base voice and the owner reading the same words (``engine.conversion``).
5. Frame mapping (optional, ``frame_mix``): each frame's coded envelope and aperiodicity are
   pulled toward the mean of its nearest reference frames (k-nearest-neighbour regression, as in
   kNN voice conversion), carrying the reference's fine spectral detail at some cost in clarity.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from math import gcd

import numpy as np
import pyworld
from scipy.ndimage import uniform_filter1d
from scipy.signal import resample_poly

from engine.conversion import SpectralMapping

FRAME_PERIOD_MS = 5.0
F0_FLOOR_HZ = 70.0
F0_CEIL_HZ = 400.0
CODED_DIMS = 40
ENVELOPE_CEPSTRUM_ORDER = 24
NEIGHBOURS = 4
MAX_POOL_FRAMES = 1500
ENVELOPE_SMOOTHING_FRAMES = 5
TARGET_RMS = 0.08


@dataclass(frozen=True)
class WorldFeatures:
    f0: np.ndarray  # Hz per frame, 0 where unvoiced
    log_envelope: np.ndarray  # frames x bins
    aperiodicity: np.ndarray  # frames x bins
    sample_rate: int

    @property
    def fft_size(self) -> int:
        return int(self.log_envelope.shape[1] - 1) * 2


@dataclass(frozen=True)
class FramePool:
    """Reference frames for frame mapping: coded envelope + coded aperiodicity, and voicing."""

    coded: np.ndarray  # frames x (CODED_DIMS + aperiodicity bands), float32
    voiced: np.ndarray  # bool per frame

    def to_text(self) -> str:
        return base64.b64encode(self.coded.astype("<f2").tobytes()).decode("ascii")

    def voiced_text(self) -> str:
        return base64.b64encode(np.packbits(self.voiced).tobytes()).decode("ascii")

    @classmethod
    def from_text(cls, coded: str, voiced: str, *, width: int) -> FramePool:
        values = np.frombuffer(base64.b64decode(coded, validate=True), dtype="<f2").astype(np.float32)
        if values.size % width:
            raise ValueError("frame pool size does not match its width")
        frames = values.reshape(-1, width)
        flags = np.unpackbits(np.frombuffer(base64.b64decode(voiced, validate=True), dtype=np.uint8))
        if flags.size < frames.shape[0]:
            raise ValueError("frame pool voicing is shorter than the pool")
        if not np.all(np.isfinite(frames)):
            raise ValueError("frame pool holds non-finite values")
        return cls(coded=frames, voiced=flags[: frames.shape[0]].astype(bool))


@dataclass(frozen=True)
class Adaptation:
    """Parameters chosen once per voice; plain numbers so they serialise into the profile."""

    source_lf0_mean: float
    source_lf0_std: float
    target_lf0_mean: float
    target_lf0_std: float
    warp: float
    envelope_cepstrum: tuple[float, ...]
    envelope_strength: float
    frame_mix: float
    # 0 in profiles prepared before parallel conversion existed (adaptation version 1).
    mapping_strength: float = 0.0


def resample(audio: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
    if source_rate == target_rate:
        return np.asarray(audio, dtype=np.float64)
    common = gcd(source_rate, target_rate)
    resampled: np.ndarray = resample_poly(
        np.asarray(audio, dtype=np.float64), target_rate // common, source_rate // common
    )
    return resampled


def analyze(audio: np.ndarray, sample_rate: int, *, f0_estimator: str = "harvest") -> WorldFeatures:
    """WORLD analysis: F0 (Harvest, or DIO + StoneMask for version 1 profiles), CheapTrick, D4C.

    DIO put 27-43 % of the Piper voice's voiced frames far above Harvest's estimate
    (on Harvard sentences), which WORLD renders as pitch breaks and roughness; Harvest, limited
    to the range of speech, costs more CPU time (docs/benchmarks/engine.md).
    """
    x = np.ascontiguousarray(audio, dtype=np.float64)
    if f0_estimator == "harvest":
        f0, times = pyworld.harvest(
            x, sample_rate, f0_floor=F0_FLOOR_HZ, f0_ceil=F0_CEIL_HZ, frame_period=FRAME_PERIOD_MS
        )
    elif f0_estimator == "dio":
        f0, times = pyworld.dio(x, sample_rate, frame_period=FRAME_PERIOD_MS)
        f0 = pyworld.stonemask(x, f0, times, sample_rate)
    else:
        raise ValueError(f"unknown F0 estimator {f0_estimator!r}")
    envelope = pyworld.cheaptrick(x, f0, times, sample_rate)
    aperiodicity = pyworld.d4c(x, f0, times, sample_rate)
    return WorldFeatures(
        f0=f0, log_envelope=np.log(np.maximum(envelope, 1e-16)), aperiodicity=aperiodicity, sample_rate=sample_rate
    )


def lf0_stats(f0: np.ndarray) -> tuple[float, float]:
    voiced = f0[f0 > 0]
    if voiced.size < 10:
        raise ValueError("too few voiced frames to estimate pitch")
    # Median and half the 16–84 % range: robust to the octave errors and voicing slips that
    # would inflate a plain mean and standard deviation (and so exaggerate the intonation).
    low, median, high = np.percentile(np.log(voiced), [16, 50, 84])
    return float(median), float(max((high - low) / 2, 1e-3))


def warp_envelope(log_envelope: np.ndarray, warp: float) -> np.ndarray:
    """Scale the frequency axis: warp > 1 moves formants up (shorter vocal tract)."""
    bins = log_envelope.shape[1]
    source = np.clip(np.arange(bins) / warp, 0, bins - 1)
    low = np.floor(source).astype(int)
    high = np.minimum(low + 1, bins - 1)
    weight = source - low
    return np.ascontiguousarray(log_envelope[:, low] * (1 - weight) + log_envelope[:, high] * weight)


def mean_voiced_envelope(features: WorldFeatures, log_envelope: np.ndarray | None = None) -> np.ndarray:
    env = features.log_envelope if log_envelope is None else log_envelope
    voiced = features.f0 > 0
    mean: np.ndarray = env[voiced].mean(axis=0) if voiced.any() else env.mean(axis=0)
    return mean


def smooth_correction(difference: np.ndarray) -> tuple[float, ...]:
    """Low-order real cepstrum of a log-spectral difference: keeps the tilt and formant-region
    balance, drops harmonic ripple that would otherwise be imprinted on every frame."""
    cepstrum = np.fft.irfft(difference)
    return tuple(float(c) for c in cepstrum[:ENVELOPE_CEPSTRUM_ORDER])


def correction_curve(cepstrum: tuple[float, ...], bins: int) -> np.ndarray:
    full = np.zeros((bins - 1) * 2)
    order = len(cepstrum)
    full[:order] = cepstrum
    full[-(order - 1) :] = cepstrum[1:][::-1]  # a real cepstrum is symmetric
    return np.fft.rfft(full).real


def code_envelope(log_envelope: np.ndarray, sample_rate: int) -> np.ndarray:
    """WORLD's coded envelope (cepstrum of the mel-warped log envelope), frames x CODED_DIMS."""
    coded: np.ndarray = pyworld.code_spectral_envelope(
        np.ascontiguousarray(np.exp(log_envelope)), sample_rate, CODED_DIMS
    )
    return coded


def _decoded_log(coded: np.ndarray, sample_rate: int, fft_size: int) -> np.ndarray:
    envelope = pyworld.decode_spectral_envelope(np.ascontiguousarray(coded), sample_rate, fft_size)
    log_envelope: np.ndarray = np.log(np.maximum(envelope, 1e-16))
    return log_envelope


def adapted_log_envelope(
    features: WorldFeatures, adaptation: Adaptation, mapping: SpectralMapping | None = None
) -> np.ndarray:
    """Steps 2-4: warp, long-term correction, then the parallel conversion's offsets. The offsets
    are added as the difference of two decoded envelopes, so the frame keeps its own detail."""
    a = adaptation
    bins = features.log_envelope.shape[1]
    log_env = warp_envelope(features.log_envelope, a.warp)
    log_env += a.envelope_strength * correction_curve(a.envelope_cepstrum, bins)[None, :]
    if mapping is not None and a.mapping_strength > 0:
        coded = code_envelope(log_env, features.sample_rate)
        mapped = mapping.apply(coded, strength=a.mapping_strength)
        rate, size = features.sample_rate, features.fft_size
        log_env += _decoded_log(mapped, rate, size) - _decoded_log(coded, rate, size)
    return log_env


def _code(log_envelope: np.ndarray, aperiodicity: np.ndarray, sample_rate: int) -> np.ndarray:
    env = pyworld.code_spectral_envelope(np.ascontiguousarray(np.exp(log_envelope)), sample_rate, CODED_DIMS)
    ap = pyworld.code_aperiodicity(np.ascontiguousarray(aperiodicity), sample_rate)
    return np.hstack([env, ap])


def build_frame_pool(features: list[WorldFeatures]) -> FramePool:
    """Coded frames of the reference speech, dropping the quietest 30 % (pauses, breath)."""
    coded, voiced = [], []
    for item in features:
        frames = _code(item.log_envelope, item.aperiodicity, item.sample_rate)
        loud = frames[:, 0] > np.percentile(frames[:, 0], 30)
        coded.append(frames[loud])
        voiced.append(item.f0[loud] > 0)
    pool = np.vstack(coded).astype(np.float32)
    flags = np.concatenate(voiced)
    if pool.shape[0] > MAX_POOL_FRAMES:  # bound profile size and matching cost
        keep = np.linspace(0, pool.shape[0] - 1, MAX_POOL_FRAMES).round().astype(int)
        pool, flags = pool[keep], flags[keep]
    return FramePool(coded=pool, voiced=flags)


def _map_frames(coded: np.ndarray, voiced: np.ndarray, pool: FramePool, mix: float) -> np.ndarray:
    out = coded.copy()
    for mask, pool_mask in ((voiced, pool.voiced), (~voiced, ~pool.voiced)):
        candidates = pool.coded[pool_mask].astype(np.float64)
        if not mask.any() or candidates.shape[0] < NEIGHBOURS:
            continue
        # Match on envelope shape only (coefficient 0 is level, the tail is aperiodicity).
        query = coded[mask][:, 1:CODED_DIMS]
        keys = candidates[:, 1:CODED_DIMS]
        distance = (query**2).sum(1)[:, None] - 2 * query @ keys.T + (keys**2).sum(1)[None, :]
        nearest = np.argpartition(distance, NEIGHBOURS - 1, axis=1)[:, :NEIGHBOURS]
        target = candidates[nearest].mean(axis=1)
        out[mask, 1:] = mix * target[:, 1:] + (1 - mix) * coded[mask][:, 1:]
    # A three-frame average hides the seams between frames mapped to different neighbours.
    smoothed: np.ndarray = uniform_filter1d(out, 3, axis=0)
    return smoothed


def convert(
    features: WorldFeatures,
    adaptation: Adaptation,
    pool: FramePool | None,
    *,
    mapping: SpectralMapping | None = None,
    pitch_semitones: float = 0.0,
) -> np.ndarray:
    """Resynthesise source features as the adapted voice; returns float64 audio at the same rate."""
    a = adaptation
    f0 = features.f0.copy()
    voiced = f0 > 0
    if voiced.any():
        z = (np.log(f0[voiced]) - a.source_lf0_mean) / a.source_lf0_std
        f0[voiced] = np.exp(z * a.target_lf0_std + a.target_lf0_mean + pitch_semitones * np.log(2) / 12)
    log_env = adapted_log_envelope(features, a, mapping)
    # A 25 ms moving average of the envelope removes frame-to-frame analysis jitter that WORLD
    # renders as roughness (DNSMOS of plain resynthesis rose by about 0.15-0.2 in trials).
    log_env = uniform_filter1d(log_env, ENVELOPE_SMOOTHING_FRAMES, axis=0)
    aperiodicity = features.aperiodicity
    if pool is not None and a.frame_mix > 0:
        coded = _map_frames(_code(log_env, aperiodicity, features.sample_rate), voiced, pool, a.frame_mix)
        envelope = pyworld.decode_spectral_envelope(
            np.ascontiguousarray(coded[:, :CODED_DIMS]), features.sample_rate, features.fft_size
        )
        aperiodicity = pyworld.decode_aperiodicity(
            np.ascontiguousarray(coded[:, CODED_DIMS:]), features.sample_rate, features.fft_size
        )
    else:
        envelope = np.exp(log_env)
    y = pyworld.synthesize(
        np.ascontiguousarray(f0),
        np.ascontiguousarray(envelope),
        np.ascontiguousarray(aperiodicity),
        features.sample_rate,
        FRAME_PERIOD_MS,
    )
    return normalize_loudness(y)


def normalize_loudness(audio: np.ndarray) -> np.ndarray:
    """Fixed speech level, peaks kept below full scale."""
    rms = float(np.sqrt(np.mean(audio**2))) if audio.size else 0.0
    if rms < 1e-9:
        return audio
    y = audio * (TARGET_RMS / rms)
    peak = float(np.max(np.abs(y)))
    return y * (0.95 / peak) if peak > 0.95 else y
