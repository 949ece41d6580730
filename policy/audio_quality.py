"""Quality gates for enrollment audio: input sanity, voice activity, SNR, clipping, sample rate.

Used for the reference recordings of a voice (enrollment check e) and for basic sanity of the
consent recording. Every gate raises a specific ``policy.errors`` class; nothing returns a bool.

The voice-activity detector is energy based with an adaptive floor (30 ms frames; a frame is
speech when it is 12 dB above the recording's quiet frames, within 35 dB of its loud frames and above an
absolute floor, and
carries most of its energy in the speech band), smoothed so short gaps between syllables count
as speech. It is meant to measure "how much speech", not to segment precisely.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import binary_closing, binary_opening

from policy.errors import (
    AudioClipped,
    AudioEmpty,
    AudioNotFinite,
    AudioSampleRateUnsupported,
    AudioTooLong,
    AudioWrongShape,
    SampleRateTooLow,
    TooLittleSpeech,
    TooMuchClipping,
    TooMuchSpeech,
    TooNoisy,
)

_FRAME_S = 0.03
# A single recording longer than this is refused before any analysis (memory, CPU).
MAX_RECORDING_S = 600.0
_MAX_SAMPLE_RATE = 192_000
_ABSOLUTE_FLOOR_DB = -60.0
_ABOVE_FLOOR_DB = 12.0
_BELOW_LOUD_DB = 35.0
# Peak-normalized audio touches full scale on a few samples; clipping is a run of them.
_CLIP_LEVEL = 0.999
_CLIP_RUN = 3


@dataclass(frozen=True)
class QualityLimits:
    min_sample_rate: int = 16_000
    min_total_speech_s: float = 10.0
    max_total_speech_s: float = 300.0
    min_snr_db: float = 15.0
    max_clipped_fraction: float = 0.005


@dataclass(frozen=True)
class QualityReport:
    sample_rate: int
    duration_s: float
    speech_s: float
    snr_db: float
    clipped_fraction: float


def validate_waveform(audio: np.ndarray, *, sample_rate: int) -> np.ndarray:
    """Return ``audio`` as float64 mono, or raise for empty, non-finite, multi-channel or huge input."""
    if not isinstance(sample_rate, (int, np.integer)) or not 0 < sample_rate <= _MAX_SAMPLE_RATE:
        raise AudioSampleRateUnsupported(f"sample rate {sample_rate!r} is not a rate in (0, {_MAX_SAMPLE_RATE}]")
    array = np.asarray(audio)
    if array.ndim != 1:
        raise AudioWrongShape(f"expected a mono 1-D waveform, got shape {array.shape}")
    if array.size == 0:
        raise AudioEmpty("the recording has no samples")
    if array.size > MAX_RECORDING_S * sample_rate:
        raise AudioTooLong(f"a recording may last at most {MAX_RECORDING_S:.0f} s")
    if not np.issubdtype(array.dtype, np.floating):
        raise AudioWrongShape(f"expected float samples in [-1, 1], got {array.dtype}")
    array = array.astype(np.float64, copy=False)
    if not np.all(np.isfinite(array)):
        raise AudioNotFinite("the recording contains NaN or infinite samples")
    if np.max(np.abs(array)) > 1.0:
        raise AudioClipped("samples outside [-1, 1]: not a float waveform in the documented range")
    return array


def _frame_power_db(audio: np.ndarray, *, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    frame = max(int(_FRAME_S * sample_rate), 1)
    count = audio.size // frame
    frames = audio[: count * frame].reshape(count, frame) if count else audio[None, :]
    power = np.mean(frames**2, axis=1)
    # Fraction of each frame's energy between 80 Hz and 4 kHz: hum and hiss are not speech.
    spectrum = np.abs(np.fft.rfft(frames * np.hanning(frames.shape[1]), axis=1)) ** 2
    freqs = np.fft.rfftfreq(frames.shape[1], 1.0 / sample_rate)
    band = (freqs >= 80) & (freqs <= 4000)
    band_ratio = spectrum[:, band].sum(axis=1) / np.maximum(spectrum.sum(axis=1), 1e-20)
    return 10 * np.log10(power + 1e-12), band_ratio


def speech_frames(audio: np.ndarray, *, sample_rate: int) -> np.ndarray:
    """Boolean mask of 30 ms frames that carry speech."""
    power_db, band_ratio = _frame_power_db(audio, sample_rate=sample_rate)
    # Digital silence (padding, gated pauses) says nothing about the noise under the speech.
    live = power_db[power_db > -100.0]
    floor_db = np.percentile(live, 10) if live.size else -120.0
    # Relative to the loud frames too: over digital silence the floor is meaningless.
    loud_db = np.percentile(power_db, 95)
    threshold_db = max(floor_db + _ABOVE_FLOOR_DB, loud_db - _BELOW_LOUD_DB, _ABSOLUTE_FLOOR_DB)
    mask = (power_db > threshold_db) & (band_ratio > 0.5)
    # Fill pauses shorter than ~150 ms inside words, drop isolated clicks shorter than ~60 ms.
    mask = binary_closing(mask, structure=np.ones(5, dtype=bool))
    mask = binary_opening(mask, structure=np.ones(2, dtype=bool))
    return np.asarray(mask, dtype=bool)


def measure_quality(audio: np.ndarray, *, sample_rate: int) -> QualityReport:
    array = validate_waveform(audio, sample_rate=sample_rate)
    mask = speech_frames(array, sample_rate=sample_rate)
    power_db, _ = _frame_power_db(array, sample_rate=sample_rate)
    power = 10 ** (power_db / 10)
    if mask.any():
        # Noise power from the quietest tenth of the frames (pauses, breaths excluded by being
        # louder); VAD's non-speech frames include soft speech onsets and would understate SNR.
        quiet = power[power <= np.percentile(power, 10)]
        noise = max(float(np.mean(quiet)), 1e-12)
        signal = max(float(np.mean(power[mask])) - noise, 1e-12)
        snr_db = float(np.clip(10 * np.log10(signal / noise), -20.0, 100.0))
    else:
        snr_db = -20.0
    at_full_scale = np.abs(array) >= _CLIP_LEVEL
    # Count samples in runs of at least _CLIP_RUN consecutive full-scale samples.
    run_kernel = np.ones(_CLIP_RUN, dtype=int)
    in_run = np.convolve(at_full_scale.astype(int), run_kernel, mode="same") >= _CLIP_RUN
    clipped_fraction = float(np.mean(in_run & at_full_scale))
    return QualityReport(
        sample_rate=int(sample_rate),
        duration_s=array.size / sample_rate,
        speech_s=float(mask.sum()) * max(int(_FRAME_S * sample_rate), 1) / sample_rate,
        snr_db=snr_db,
        clipped_fraction=clipped_fraction,
    )


def check_recording_quality(
    audio: np.ndarray, *, sample_rate: int, limits: QualityLimits = QualityLimits()
) -> QualityReport:
    """Gates that apply to every recording on its own: rate, clipping, SNR."""
    if sample_rate < limits.min_sample_rate:
        raise SampleRateTooLow(f"sample rate {sample_rate} Hz is below {limits.min_sample_rate} Hz")
    report = measure_quality(audio, sample_rate=sample_rate)
    if report.clipped_fraction > limits.max_clipped_fraction:
        raise TooMuchClipping(
            f"{report.clipped_fraction:.2%} of samples are clipped (at most {limits.max_clipped_fraction:.2%})"
        )
    if report.snr_db < limits.min_snr_db:
        raise TooNoisy(f"estimated SNR {report.snr_db:.1f} dB is below {limits.min_snr_db:.1f} dB")
    return report


def check_reference_quality(
    recordings: list[tuple[np.ndarray, int]], *, limits: QualityLimits = QualityLimits()
) -> list[QualityReport]:
    """Every reference passes the per-recording gates and the total speech is within limits."""
    if not recordings:
        raise AudioEmpty("at least one reference recording is required")
    reports = [check_recording_quality(audio, sample_rate=rate, limits=limits) for audio, rate in recordings]
    total_speech = sum(report.speech_s for report in reports)
    if total_speech < limits.min_total_speech_s:
        raise TooLittleSpeech(
            f"{total_speech:.1f} s of speech in the references; at least {limits.min_total_speech_s:.0f} s needed"
        )
    if total_speech > limits.max_total_speech_s:
        raise TooMuchSpeech(
            f"{total_speech:.1f} s of speech in the references; at most {limits.max_total_speech_s:.0f} s allowed"
        )
    return reports
