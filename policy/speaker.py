"""Speaker embeddings: one interface, the resemblyzer encoder by default, a local ONNX model as
the production option (``policy.speaker_onnx``), and the fusion of several embeddings of one
speaker into one piece of evidence.

Every embedder takes a mono float waveform with an explicit sample rate and returns one
L2-normalised float32 vector, so that a dot product is the cosine similarity. Unusable audio
(empty, NaN, stereo, silent, too little speech, too long) raises a specific ``AudioUnusable``
subclass: a speaker decision is never made on audio the model cannot judge.
"""

from __future__ import annotations

import hashlib
import io
import threading
from collections.abc import Sequence
from math import gcd
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
from scipy.signal import resample_poly

from policy.errors import (
    AudioClipped,
    AudioEmpty,
    AudioNotFinite,
    AudioSampleRateUnsupported,
    AudioSilent,
    AudioTooLong,
    AudioTooShort,
    AudioUnusable,
    AudioWrongShape,
    EmbeddingInvalid,
    SpeakerModelError,
    SpeakerModelHashMismatch,
)

MODEL_SAMPLE_RATE = 16_000
MIN_INPUT_SAMPLE_RATE = 8_000
MAX_INPUT_SAMPLE_RATE = 192_000
# Below about a second of voiced audio d-vectors scatter widely (one 1.6 s partial window,
# mostly padding); a decision on less would be noise.
DEFAULT_MIN_SPEECH_SECONDS = 1.0
# References and outputs are seconds to a few minutes; anything longer is refused rather
# than spending minutes of CPU on a single request.
DEFAULT_MAX_INPUT_SECONDS = 300.0
# Evidence windows: a reference or an output is scored whole and in windows of this length with
# half-window hops; a clip shorter than one window is a single window. Three seconds is the
# shortest duration on which the blocklist benchmark measured usable d-vectors (its former probes).
WINDOW_SECONDS = 3.0
WINDOW_HOP_SECONDS = 1.5
# -60 dBFS RMS: digital silence or a disconnected microphone, not quiet speech.
SILENCE_RMS = 10 ** (-60 / 20)
# Float audio must lie in [-1, 1]; a small margin allows for resampling overshoot.
MAX_ABS_SAMPLE = 1.0 + 1e-3

# The resemblyzer package ships its encoder weights; this pins the exact file so a replaced
# checkpoint is refused instead of silently changing every score and threshold.
RESEMBLYZER_WEIGHTS_SHA256 = "39373b86598fa3da9fcddee6142382efe09777e8d37dc9c0561f41f0070f134e"


@runtime_checkable
class SpeakerEmbedder(Protocol):
    """What the blocklist and the consent check need from a speaker model."""

    @property
    def name(self) -> str:
        """Identifies the model (and version): embeddings from different models never mix."""

    @property
    def dimension(self) -> int: ...

    def embed(self, audio: np.ndarray, *, sample_rate: int) -> np.ndarray:
        """One L2-normalised float32 vector of length ``dimension``."""


def sha256_of_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_pinned(path: Path, *, sha256: str, what: str = "speaker model") -> bytes:
    """The file's bytes, after checking them against the pinned digest (read once, so the
    bytes that are hashed are the bytes that are loaded)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SpeakerModelError(f"cannot read {what} {path.name}: {exc}") from exc
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256.lower():
        raise SpeakerModelHashMismatch(f"{what} {path.name} has sha256 {actual}, expected {sha256.lower()}")
    return data


def open_pinned_onnx(path: Path, *, sha256: str, what: str, threads: int = 1) -> Any:
    """An onnxruntime CPU session over the file, whose bytes are checked against the pinned
    digest first (see `read_pinned`)."""
    import onnxruntime

    data = read_pinned(path, sha256=sha256, what=what)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    try:
        return onnxruntime.InferenceSession(data, sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped errors for bad files
        raise SpeakerModelError(f"cannot load {what} {path.name}: {exc}") from exc


def validate_waveform(
    audio: np.ndarray, *, sample_rate: int, max_seconds: float = DEFAULT_MAX_INPUT_SECONDS
) -> np.ndarray:
    """Check that ``audio`` is a usable mono float waveform; return it as float32."""
    if not isinstance(sample_rate, int | np.integer) or isinstance(sample_rate, bool):
        raise AudioSampleRateUnsupported(f"sample_rate must be an integer, got {sample_rate!r}")
    if not MIN_INPUT_SAMPLE_RATE <= sample_rate <= MAX_INPUT_SAMPLE_RATE:
        raise AudioSampleRateUnsupported(
            f"sample rate {sample_rate} Hz outside {MIN_INPUT_SAMPLE_RATE}-{MAX_INPUT_SAMPLE_RATE} Hz"
        )
    if not isinstance(audio, np.ndarray):
        raise AudioWrongShape(f"audio must be a numpy array, got {type(audio).__name__}")
    if audio.ndim != 1:
        raise AudioWrongShape(f"audio must be mono (a 1-D array), got shape {audio.shape}; mix down stereo first")
    if not np.issubdtype(audio.dtype, np.floating):
        raise AudioWrongShape(f"audio must be float samples in [-1, 1], got dtype {audio.dtype}")
    if audio.size == 0:
        raise AudioEmpty("audio has no samples")
    if audio.size > max_seconds * sample_rate:
        raise AudioTooLong(f"audio is {audio.size / sample_rate:.1f} s, more than {max_seconds:.0f} s")
    if not np.all(np.isfinite(audio)):
        raise AudioNotFinite("audio contains NaN or infinite samples")
    peak = float(np.max(np.abs(audio)))
    if peak > MAX_ABS_SAMPLE:
        raise AudioClipped(f"audio peak {peak:.3g} is outside [-1, 1]; is it integer PCM cast to float?")
    samples = audio.astype(np.float32, copy=False)
    if float(np.sqrt(np.mean(np.square(samples, dtype=np.float64)))) < SILENCE_RMS:
        raise AudioSilent("audio is silent (RMS below -60 dBFS)")
    return samples


def resample(audio: np.ndarray, *, from_rate: int, to_rate: int) -> np.ndarray:
    if from_rate == to_rate:
        return audio
    divisor = gcd(from_rate, to_rate)
    return np.asarray(resample_poly(audio, to_rate // divisor, from_rate // divisor), dtype=np.float32)


def window_spans(length: int, *, sample_rate: int) -> list[tuple[int, int]]:
    """Start and end samples of the evidence windows of a clip of ``length`` samples."""
    window, hop = int(WINDOW_SECONDS * sample_rate), int(WINDOW_HOP_SECONDS * sample_rate)
    if length <= window:
        return [(0, length)]
    starts = list(range(0, length - window + 1, hop))
    if starts[-1] + window < length:  # the tail gets a window of its own, ending at the clip's end
        starts.append(length - window)
    return [(start, start + window) for start in starts]


def fuse_embeddings(vectors: Sequence[np.ndarray]) -> np.ndarray:
    """One unit vector from several embeddings of one speaker (windows, references, enrolment
    clips): the normalised mean. Its dot product with another unit vector is, up to one positive
    factor per side, the mean of all pairwise cosine scores, so averaging embeddings is averaging
    scores and a single dot product searches the fused evidence."""
    if len(vectors) == 0:
        raise EmbeddingInvalid("nothing to fuse: no embeddings")
    rows = np.stack([np.asarray(v, dtype=np.float32).reshape(-1) for v in vectors])
    if not np.all(np.isfinite(rows)):
        raise EmbeddingInvalid("cannot fuse non-finite embeddings")
    mean = rows.mean(axis=0)
    norm = float(np.linalg.norm(mean))
    if norm < 1e-6:
        raise EmbeddingInvalid("embeddings cancel out; they are not one speaker")
    return np.asarray(mean / norm, dtype=np.float32)


def evidence_embedding(embedder: SpeakerEmbedder, *, audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """A clip's fused evidence: the whole signal and every window with enough speech in it.

    The whole-signal embedding must succeed (unusable audio raises); a window that is mostly a
    pause is skipped rather than refused, since the whole signal already vouches for the clip.
    """
    vectors = [embedder.embed(audio, sample_rate=sample_rate)]
    spans = window_spans(int(np.asarray(audio).size), sample_rate=sample_rate)
    if len(spans) > 1:
        for start, end in spans:
            try:
                vectors.append(embedder.embed(audio[start:end], sample_rate=sample_rate))
            except AudioUnusable:
                continue
    return fuse_embeddings(vectors)


WINDOWED_SUFFIX = "+windows3s"


class WindowFusionEmbedder:
    """Any embedder, with every embedding the fused evidence of the whole clip and its windows.

    Its name carries a suffix: fused embeddings sit differently from whole-clip ones, so they
    have their own calibration and never mix with the base model's stored embeddings.
    """

    def __init__(self, base: SpeakerEmbedder) -> None:
        self._base = base

    @property
    def name(self) -> str:
        return self._base.name + WINDOWED_SUFFIX

    @property
    def dimension(self) -> int:
        return self._base.dimension

    def embed(self, audio: np.ndarray, *, sample_rate: int) -> np.ndarray:
        return evidence_embedding(self._base, audio=audio, sample_rate=sample_rate)


def speech_for_model(
    audio: np.ndarray,
    *,
    sample_rate: int,
    min_speech_seconds: float = DEFAULT_MIN_SPEECH_SECONDS,
    max_seconds: float = DEFAULT_MAX_INPUT_SECONDS,
    raise_volume: bool = True,
) -> np.ndarray:
    """Validated, resampled to 16 kHz, with long pauses removed and (``raise_volume``, the
    preprocessing the resemblyzer encoder was trained with) quiet speech raised to -30 dBFS;
    raises if too little speech is left."""
    from resemblyzer.audio import normalize_volume, trim_long_silences

    samples = validate_waveform(audio, sample_rate=sample_rate, max_seconds=max_seconds)
    samples = resample(samples, from_rate=int(sample_rate), to_rate=MODEL_SAMPLE_RATE)
    samples = np.clip(samples, -1.0, 1.0)
    if raise_volume:
        samples = normalize_volume(samples, -30, increase_only=True).astype(np.float32)
        # The VAD converts to int16; louder-than-full-scale samples after normalisation would wrap.
        samples = np.clip(samples, -1.0, 1.0)
    speech = trim_long_silences(samples)
    if speech.size < min_speech_seconds * MODEL_SAMPLE_RATE:
        raise AudioTooShort(
            f"{speech.size / MODEL_SAMPLE_RATE:.2f} s of speech found, at least {min_speech_seconds:.1f} s needed"
        )
    return np.asarray(speech, dtype=np.float32)


def normalized_embedding(vector: np.ndarray, *, dimension: int, source: str) -> np.ndarray:
    """Check a model's raw output and return it L2-normalised as float32."""
    flat = np.asarray(vector, dtype=np.float32).reshape(-1)
    if flat.shape != (dimension,):
        raise EmbeddingInvalid(f"{source} produced shape {np.shape(vector)}, expected ({dimension},)")
    if not np.all(np.isfinite(flat)):
        raise EmbeddingInvalid(f"{source} produced a non-finite embedding")
    norm = float(np.linalg.norm(flat))
    if norm < 1e-8:
        raise EmbeddingInvalid(f"{source} produced a zero embedding")
    return flat / norm


def cosine(first: np.ndarray, second: np.ndarray) -> float:
    """Cosine similarity of two embeddings of the same dimension."""
    a = np.asarray(first, dtype=np.float64).reshape(-1)
    b = np.asarray(second, dtype=np.float64).reshape(-1)
    if a.shape != b.shape or a.size == 0:
        raise EmbeddingInvalid(f"cannot compare embeddings of shapes {a.shape} and {b.shape}")
    norms = float(np.linalg.norm(a) * np.linalg.norm(b))
    if not np.isfinite(norms) or norms < 1e-12:
        raise EmbeddingInvalid("cannot compare a zero or non-finite embedding")
    return float(np.dot(a, b) / norms)


class ResemblyzerEmbedder:
    """The resemblyzer d-vector encoder (256-d), weights from inside the package, sha256-pinned.

    Loaded once per process (the first instance pays ~1 s); thread-safe.
    """

    dimension = 256

    def __init__(
        self,
        *,
        weights_path: Path | None = None,
        weights_sha256: str = RESEMBLYZER_WEIGHTS_SHA256,
        min_speech_seconds: float = DEFAULT_MIN_SPEECH_SECONDS,
        max_seconds: float = DEFAULT_MAX_INPUT_SECONDS,
    ) -> None:
        import resemblyzer

        self._weights_path = weights_path or Path(resemblyzer.__file__).parent / "pretrained.pt"
        self._weights_sha256 = weights_sha256
        self.min_speech_seconds = min_speech_seconds
        self.max_seconds = max_seconds
        self._encoder = _load_resemblyzer(self._weights_path, self._weights_sha256)

    @property
    def name(self) -> str:
        return f"resemblyzer-{self._weights_sha256[:12]}"

    def embed(self, audio: np.ndarray, *, sample_rate: int) -> np.ndarray:
        speech = speech_for_model(
            audio,
            sample_rate=sample_rate,
            min_speech_seconds=self.min_speech_seconds,
            max_seconds=self.max_seconds,
        )
        encoder, lock = self._encoder
        with lock:
            vector = encoder.embed_utterance(speech)
        return normalized_embedding(vector, dimension=self.dimension, source=self.name)


_RESEMBLYZER_CACHE: dict[tuple[Path, str], tuple[Any, threading.Lock]] = {}
_RESEMBLYZER_CACHE_LOCK = threading.Lock()


def _load_resemblyzer(path: Path, sha256: str) -> tuple[Any, threading.Lock]:
    import torch
    from resemblyzer import VoiceEncoder

    key = (path.resolve(), sha256.lower())
    with _RESEMBLYZER_CACHE_LOCK:
        if key in _RESEMBLYZER_CACHE:
            return _RESEMBLYZER_CACHE[key]
        data = read_pinned(path, sha256=sha256)
        try:
            checkpoint = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
            # VoiceEncoder insists on reading a file itself; its weights are then replaced
            # by the state read from the verified bytes above.
            encoder = VoiceEncoder(device="cpu", verbose=False, weights_fpath=path)
            state = dict(checkpoint["model_state"])
            # The GE2E training loss's two scalars are stored alongside; inference has no use
            # for them. Everything else must match exactly.
            state.pop("similarity_weight", None)
            state.pop("similarity_bias", None)
            encoder.load_state_dict(state, strict=True)
        except (RuntimeError, KeyError, OSError, ValueError) as exc:
            raise SpeakerModelError(f"cannot load resemblyzer weights {path.name}: {exc}") from exc
        encoder.eval()
        entry = (encoder, threading.Lock())
        _RESEMBLYZER_CACHE[key] = entry
        return entry
