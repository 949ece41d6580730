"""Replay detection for consent recordings: spectral-peak landmark fingerprints (enrollment check d).

A fingerprint is the set of hashes of pairs of spectral peaks (frequency of the anchor peak, of
the target peak, and their time distance) with the anchor's time, as in landmark audio search.
Peaks of an 8 kHz, 64 ms spectrogram survive re-encoding (MP3, Opus), resampling, gain and
moderate noise, so a replayed recording shares many hashes *at one consistent time offset* with
the stored one. Two independent readings, even of the same text by the same voice, do not line
up peak for peak. The match score is the largest number of hashes agreeing on one offset,
divided by the smaller fingerprint's hash count.

A spliced recording (an earlier consent's head, a new phrase) also matches on the head part.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import maximum_filter
from scipy.signal import resample_poly, stft

from policy.errors import ConsentRecordingReplayed

FINGERPRINT_SAMPLE_RATE = 8_000
_FRAME = 512  # 64 ms at 8 kHz
_HOP = 128  # 16 ms
_PEAK_NEIGHBOURHOOD = (15, 11)  # (frequency bins, frames) around a local maximum
_PEAKS_PER_SECOND = 30
_FAN_OUT = 5  # pairs per anchor peak
_MAX_PAIR_FRAMES = 64  # about one second
# Calibrated by bench/consent (docs/benchmarks/consent.md, measured at 1f42bc4): independent
# readings stayed below 0.03, MP3 replays scored 0.35 or more; the midpoint of the thresholds
# separating them.
DEFAULT_REPLAY_THRESHOLD = 0.185
_VERSION = 1


@dataclass(frozen=True)
class Fingerprint:
    """Landmark hashes (uint32) and their anchor frame (uint32), sorted by hash."""

    hashes: np.ndarray
    frames: np.ndarray

    def to_bytes(self) -> bytes:
        header = np.array([_VERSION, self.hashes.size], dtype="<u4")
        return header.tobytes() + self.hashes.astype("<u4").tobytes() + self.frames.astype("<u4").tobytes()

    @classmethod
    def from_bytes(cls, blob: bytes) -> Fingerprint:
        version, count = np.frombuffer(blob[:8], dtype="<u4")
        if version != _VERSION or len(blob) != 8 + 8 * int(count):
            raise ValueError("not a consent fingerprint of this version")
        body = np.frombuffer(blob[8:], dtype="<u4")
        return cls(hashes=body[:count].copy(), frames=body[count:].copy())


def compute_fingerprint(audio: np.ndarray, *, sample_rate: int) -> Fingerprint:
    divisor = np.gcd(int(sample_rate), FINGERPRINT_SAMPLE_RATE)
    signal = resample_poly(
        np.asarray(audio, dtype=np.float64), FINGERPRINT_SAMPLE_RATE // divisor, int(sample_rate) // divisor
    )
    _, _, spectrum = stft(signal, nperseg=_FRAME, noverlap=_FRAME - _HOP, boundary=None)
    log_magnitude = np.log(np.abs(spectrum) + 1e-6)
    # Drop DC and the lowest bins (rumble, hum), which carry no speaker-specific timing.
    log_magnitude[:4] = log_magnitude.min()
    local_max = maximum_filter(log_magnitude, size=_PEAK_NEIGHBOURHOOD, mode="constant", cval=-np.inf)
    is_peak = (log_magnitude == local_max) & (log_magnitude > np.median(log_magnitude) + 2.0)
    freqs, frames = np.nonzero(is_peak)
    strengths = log_magnitude[freqs, frames]
    duration_s = signal.size / FINGERPRINT_SAMPLE_RATE
    keep = np.argsort(strengths)[::-1][: max(int(_PEAKS_PER_SECOND * duration_s), 1)]
    order = keep[np.argsort(frames[keep], kind="stable")]
    freqs, frames = freqs[order], frames[order]

    hashes, anchors = [], []
    for i in range(freqs.size):
        paired = 0
        for j in range(i + 1, freqs.size):
            dt = frames[j] - frames[i]
            if dt <= 0:
                continue
            if dt > _MAX_PAIR_FRAMES or paired >= _FAN_OUT:
                break
            # 9 bits per frequency (257 bins), 7 bits of time distance.
            hashes.append((int(freqs[i]) << 16) | (int(freqs[j]) << 7) | int(dt))
            anchors.append(int(frames[i]))
            paired += 1
    hash_array = np.asarray(hashes, dtype=np.uint32)
    frame_array = np.asarray(anchors, dtype=np.uint32)
    order = np.argsort(hash_array, kind="stable")
    return Fingerprint(hashes=hash_array[order], frames=frame_array[order])


def match_score(query: Fingerprint, stored: Fingerprint) -> float:
    """Fraction of landmarks that agree on a single time offset (0 for unrelated recordings)."""
    smaller = min(query.hashes.size, stored.hashes.size)
    if smaller == 0:
        return 0.0
    common = np.intersect1d(query.hashes, stored.hashes)
    if common.size == 0:
        return 0.0
    offsets = []
    for value in common:
        q = query.frames[np.searchsorted(query.hashes, value, "left") : np.searchsorted(query.hashes, value, "right")]
        s = stored.frames[
            np.searchsorted(stored.hashes, value, "left") : np.searchsorted(stored.hashes, value, "right")
        ]
        offsets.append((s[:, None].astype(np.int64) - q[None, :].astype(np.int64)).ravel())
    all_offsets = np.concatenate(offsets)
    # Allow one frame of jitter (resampling and codec delay shift peaks by a frame at most).
    counts = np.bincount(all_offsets - all_offsets.min() + 1)
    best = int(np.max(counts[:-1] + counts[1:])) if counts.size > 1 else int(counts.max())
    return min(best / smaller, 1.0)


def check_not_replayed(
    *, fingerprint: Fingerprint, earlier: list[tuple[str, Fingerprint]], threshold: float = DEFAULT_REPLAY_THRESHOLD
) -> None:
    """Raise if the recording matches any earlier consent recording (named by its id)."""
    for earlier_id, earlier_fingerprint in earlier:
        score = match_score(fingerprint, earlier_fingerprint)
        if score >= threshold:
            raise ConsentRecordingReplayed(
                f"the consent recording matches earlier consent recording {earlier_id} (score {score:.2f})"
            )
