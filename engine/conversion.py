"""Spectral conversion learned from parallel speech: the base voice and the owner saying the same words.

At enrollment the owner's recordings that come with a transcript (the consent statement, whose
text is known, and references the gateway's recognizer transcribed) are read again by the base
voice. Dynamic time warping (DTW) pairs the frames of the two readings, and the pairs teach a
mapping from the base voice's coded spectral envelope (WORLD's cepstrum of the mel-warped log
envelope) to the owner's:

    y(x) = x + mean of (target - source) over the K source frames of the pairs nearest to x

a k-nearest-neighbour regression of the cepstral difference. The neighbours are searched among
the base voice's own frames, so the distance compares like with like (a base-voice frame of an
/a/ finds the base voice's /a/ frames), and what is added is how the owner's /a/ differed from
the base voice's /a/ in those pairs. Averaging K offsets smooths over misaligned pairs; adding an
offset instead of replacing the frame keeps the source's own detail, so phonemes stay sharp.
With the few seconds of parallel speech an enrollment has (a statement and short references:
190-1500 pairs in the engine benchmark), this has fewer free choices than a joint-density GMM
over static and delta cepstra, which needs far more frames for its covariances.

Alignment runs twice: first on cepstra standardised per side (speaker differences removed), then
between the converted source and the target, which are now in the same space.

Pure numpy on coded frames; the WORLD analysis and coding live in ``engine.world_adapt``.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

import numpy as np

# Coefficients 1..KEY_DIMS-1 of the coded envelope find neighbours (0 is level, the tail is
# fine detail that differs between takes of the same phoneme).
KEY_DIMS = 25
NEIGHBOURS = 16
MAX_MAPPING_FRAMES = 1500
# Frames this far (in coded level, coefficient 0) below the loudest 5 % are pauses and breath:
# they are trimmed from both ends before alignment and never form pairs.
SPEECH_FLOOR = 4.0
ALIGN_PASSES = 2


@dataclass(frozen=True)
class SpectralMapping:
    """Source keys (base voice frames, coefficients 1..KEY_DIMS-1) and the offsets to add."""

    keys: np.ndarray  # pairs x (KEY_DIMS - 1), float32
    offsets: np.ndarray  # pairs x (coded dims - 1), float32

    def __post_init__(self) -> None:
        if self.keys.ndim != 2 or self.offsets.ndim != 2 or self.keys.shape[0] != self.offsets.shape[0]:
            raise ValueError("mapping keys and offsets must be matrices with one row per pair")
        if self.keys.shape[0] < NEIGHBOURS:
            raise ValueError(f"a mapping needs at least {NEIGHBOURS} pairs")
        if self.keys.shape[1] != KEY_DIMS - 1 or self.offsets.shape[1] < self.keys.shape[1]:
            raise ValueError("mapping has the wrong number of coefficients")
        if not (np.all(np.isfinite(self.keys)) and np.all(np.isfinite(self.offsets))):
            raise ValueError("mapping holds non-finite values")

    @property
    def pairs(self) -> int:
        return int(self.keys.shape[0])

    def offsets_for(self, coded: np.ndarray) -> np.ndarray:
        """Per frame of ``coded`` (frames x dims), the offset to add to coefficients 1.. ."""
        query = np.asarray(coded[:, 1:KEY_DIMS], dtype=np.float32)
        keys = self.keys
        distance = (query**2).sum(1)[:, None] - 2 * query @ keys.T + (keys**2).sum(1)[None, :]
        nearest = np.argpartition(distance, NEIGHBOURS - 1, axis=1)[:, :NEIGHBOURS]
        offsets: np.ndarray = self.offsets[nearest].mean(axis=1)
        return offsets

    def apply(self, coded: np.ndarray, *, strength: float = 1.0) -> np.ndarray:
        out = np.array(coded, dtype=np.float64)
        width = min(out.shape[1] - 1, self.offsets.shape[1])
        out[:, 1 : 1 + width] += strength * self.offsets_for(out)[:, :width]
        return out

    def to_json(self) -> dict[str, object]:
        return {
            "keys": _encode(self.keys),
            "offsets": _encode(self.offsets),
            "key_width": int(self.keys.shape[1]),
            "offset_width": int(self.offsets.shape[1]),
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> SpectralMapping:
        """Raises ValueError, KeyError or TypeError on a malformed mapping."""
        keys = _decode(str(data["keys"]), width=_int(data["key_width"]))
        offsets = _decode(str(data["offsets"]), width=_int(data["offset_width"]))
        return cls(keys=keys, offsets=offsets)


def _int(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError("mapping widths must be positive integers")
    return value


def _encode(matrix: np.ndarray) -> str:
    return base64.b64encode(np.asarray(matrix, dtype="<f2").tobytes()).decode("ascii")


def _decode(text: str, *, width: int) -> np.ndarray:
    values = np.frombuffer(base64.b64decode(text, validate=True), dtype="<f2").astype(np.float32)
    if values.size == 0 or values.size % width:
        raise ValueError("mapping size does not match its width")
    return values.reshape(-1, width)


def speech_frames(coded: np.ndarray) -> np.ndarray:
    """Frames within SPEECH_FLOOR of the loudest frames' level (coefficient 0)."""
    level = coded[:, 0]
    return np.asarray(level > np.percentile(level, 95) - SPEECH_FLOOR)


def dtw_path(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Minimum-cost monotone alignment (steps (1,0), (0,1), (1,1)) of two frame sequences,
    Euclidean frame distance; returns index pairs, shape (steps, 2).

    Each row is solved at once: with the horizontal step, D[i, j] = S[j] + min over k <= j of
    (A[k] - S[k]), where S is the row's cumulative cost and A the best arrival from row i-1,
    so a running minimum replaces the inner loop.
    """
    n, m = source.shape[0], target.shape[0]
    if n == 0 or m == 0:
        raise ValueError("cannot align an empty sequence")
    squared = (source**2).sum(1)[:, None] - 2 * source @ target.T + (target**2).sum(1)[None, :]
    cost = np.sqrt(np.maximum(squared, 0.0)).astype(np.float32)
    total = np.empty((n, m), dtype=np.float32)
    for i in range(n):
        row_cost = cost[i]
        arrive = np.full(m, np.inf, dtype=np.float32)
        if i == 0:
            arrive[0] = row_cost[0]
        else:
            previous = total[i - 1]
            arrive[0] = previous[0] + row_cost[0]
            arrive[1:] = row_cost[1:] + np.minimum(previous[1:], previous[:-1])
        cumulative = np.cumsum(row_cost, dtype=np.float64)
        total[i] = cumulative + np.minimum.accumulate(arrive - cumulative)
    i, j = n - 1, m - 1
    path = [(i, j)]
    while i > 0 or j > 0:
        if i == 0:
            j -= 1
        elif j == 0:
            i -= 1
        else:
            step = int(np.argmin((total[i - 1, j - 1], total[i - 1, j], total[i, j - 1])))
            i, j = (i - 1, j - 1) if step == 0 else (i - 1, j) if step == 1 else (i, j - 1)
        path.append((i, j))
    return np.array(path[::-1], dtype=np.int64)


def _standardised(frames: np.ndarray) -> np.ndarray:
    standardised: np.ndarray = (frames - frames.mean(0)) / (frames.std(0) + 1e-6)
    return standardised


@dataclass(frozen=True)
class ParallelReading:
    """One utterance in both voices, as coded envelope frames (frames x dims)."""

    source: np.ndarray
    target: np.ndarray


def _trimmed(coded: np.ndarray) -> np.ndarray:
    speech = np.flatnonzero(speech_frames(coded))
    return coded[speech[0] : speech[-1] + 1]


def _pairs(reading: ParallelReading, mapping: SpectralMapping | None) -> tuple[np.ndarray, np.ndarray]:
    """Aligned (source, target) frames of one reading, pauses dropped. Aligned on every second
    frame (10 ms): a quarter of the memory and time, no visible loss for phoneme timing."""
    source, target = _trimmed(reading.source), _trimmed(reading.target)
    if mapping is None:
        a, b = _standardised(source[:, 1:KEY_DIMS]), _standardised(target[:, 1:KEY_DIMS])
    else:
        a, b = mapping.apply(source)[:, 1:KEY_DIMS], target[:, 1:KEY_DIMS]
    path = dtw_path(a[::2], b[::2]) * 2
    path = np.vstack([path, np.minimum(path + 1, [source.shape[0] - 1, target.shape[0] - 1])])
    keep = speech_frames(source)[path[:, 0]] & speech_frames(target)[path[:, 1]]
    return source[path[keep, 0]], target[path[keep, 1]]


def learn_mapping(readings: list[ParallelReading]) -> SpectralMapping:
    """Align each reading, learn the offset regression, align again with it, learn again."""
    if not readings:
        raise ValueError("no parallel readings to learn from")
    mapping = _fit([_pairs(reading, None) for reading in readings])
    for _ in range(ALIGN_PASSES - 1):
        mapping = _fit([_pairs(reading, mapping) for reading in readings])
    return mapping


def _fit(pairs: list[tuple[np.ndarray, np.ndarray]]) -> SpectralMapping:
    source = np.vstack([p[0] for p in pairs])
    target = np.vstack([p[1] for p in pairs])
    if source.shape[0] > MAX_MAPPING_FRAMES:  # bounds profile size and synthesis cost
        keep = np.linspace(0, source.shape[0] - 1, MAX_MAPPING_FRAMES).round().astype(int)
        source, target = source[keep], target[keep]
    return SpectralMapping(
        keys=source[:, 1:KEY_DIMS].astype(np.float32), offsets=(target - source)[:, 1:].astype(np.float32)
    )
