"""Speaker embeddings: one interface, the resemblyzer encoder by default, a local ONNX model as
the production option.

Every embedder takes a mono float waveform with an explicit sample rate and returns one
L2-normalised float32 vector, so that a dot product is the cosine similarity. Unusable audio
(empty, NaN, stereo, silent, too little speech, too long) raises a specific ``AudioUnusable``
subclass: a speaker decision is never made on audio the model cannot judge.
"""

from __future__ import annotations

import hashlib
import io
import threading
from dataclasses import dataclass
from math import gcd
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

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


def _read_pinned(path: Path, *, sha256: str) -> bytes:
    """The file's bytes, after checking them against the pinned digest (read once, so the
    bytes that are hashed are the bytes that are loaded)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SpeakerModelError(f"cannot read speaker model {path.name}: {exc}") from exc
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256.lower():
        raise SpeakerModelHashMismatch(f"speaker model {path.name} has sha256 {actual}, expected {sha256.lower()}")
    return data


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
    return resample_poly(audio, to_rate // divisor, from_rate // divisor).astype(np.float32)


def speech_for_model(
    audio: np.ndarray,
    *,
    sample_rate: int,
    min_speech_seconds: float = DEFAULT_MIN_SPEECH_SECONDS,
    max_seconds: float = DEFAULT_MAX_INPUT_SECONDS,
) -> np.ndarray:
    """Validated, resampled to 16 kHz, loudness-raised and with long pauses removed (the
    preprocessing the resemblyzer encoder was trained with); raises if too little speech is left."""
    from resemblyzer.audio import normalize_volume, trim_long_silences

    samples = validate_waveform(audio, sample_rate=sample_rate, max_seconds=max_seconds)
    samples = resample(samples, from_rate=int(sample_rate), to_rate=MODEL_SAMPLE_RATE)
    samples = np.clip(samples, -1.0, 1.0)
    samples = normalize_volume(samples, -30, increase_only=True).astype(np.float32)
    # The VAD converts to int16; louder-than-full-scale samples after normalisation would wrap.
    samples = np.clip(samples, -1.0, 1.0)
    speech = trim_long_silences(samples)
    if speech.size < min_speech_seconds * MODEL_SAMPLE_RATE:
        raise AudioTooShort(
            f"{speech.size / MODEL_SAMPLE_RATE:.2f} s of speech found, at least {min_speech_seconds:.1f} s needed"
        )
    return speech.astype(np.float32, copy=False)


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


_RESEMBLYZER_CACHE: dict[tuple[Path, str], tuple[object, threading.Lock]] = {}
_RESEMBLYZER_CACHE_LOCK = threading.Lock()


def _load_resemblyzer(path: Path, sha256: str) -> tuple[object, threading.Lock]:
    import torch
    from resemblyzer import VoiceEncoder

    key = (path.resolve(), sha256.lower())
    with _RESEMBLYZER_CACHE_LOCK:
        if key in _RESEMBLYZER_CACHE:
            return _RESEMBLYZER_CACHE[key]
        data = _read_pinned(path, sha256=sha256)
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


FrontEnd = Literal["waveform", "fbank80"]


@dataclass(frozen=True)
class OnnxModelSpec:
    """Where a production speaker model lives and what it expects.

    ``front_end``: ``"waveform"`` feeds ``[1, samples]`` float32 at 16 kHz; ``"fbank80"`` feeds
    ``[1, frames, 80]`` Kaldi log-mel filterbanks (25 ms / 10 ms, mean-normalised over time),
    the input of the common ResNet / ECAPA / CAM++ speaker-verification exports.
    """

    path: Path
    sha256: str
    dimension: int
    name: str
    front_end: FrontEnd = "fbank80"


class OnnxSpeakerEmbedder:
    """A local ONNX speaker-embedding model, refused unless its sha256 matches the pin."""

    def __init__(
        self,
        spec: OnnxModelSpec,
        *,
        threads: int = 1,
        min_speech_seconds: float = DEFAULT_MIN_SPEECH_SECONDS,
        max_seconds: float = DEFAULT_MAX_INPUT_SECONDS,
    ) -> None:
        import onnxruntime

        if spec.front_end not in ("waveform", "fbank80"):
            raise SpeakerModelError(f"unknown front end {spec.front_end!r}")
        if spec.dimension <= 0:
            raise SpeakerModelError(f"embedding dimension must be positive, got {spec.dimension}")
        self._spec = spec
        self.min_speech_seconds = min_speech_seconds
        self.max_seconds = max_seconds
        data = _read_pinned(Path(spec.path), sha256=spec.sha256)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        try:
            self._session = onnxruntime.InferenceSession(data, sess_options=options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own untyped errors for bad files
            raise SpeakerModelError(f"cannot load ONNX speaker model {Path(spec.path).name}: {exc}") from exc
        inputs = self._session.get_inputs()
        outputs = self._session.get_outputs()
        if len(inputs) != 1 or not outputs:
            raise SpeakerModelError("ONNX speaker model must have exactly one input and an output")
        self._input_name = inputs[0].name
        self._output_name = outputs[0].name
        expected_rank = 3 if spec.front_end == "fbank80" else 2
        if len(inputs[0].shape) != expected_rank:
            raise SpeakerModelError(
                f"front end {spec.front_end} needs a rank-{expected_rank} input, model has {inputs[0].shape}"
            )
        declared = outputs[0].shape[-1] if outputs[0].shape else None
        if isinstance(declared, int) and declared != spec.dimension:
            raise SpeakerModelError(f"model outputs {declared}-d embeddings, spec says {spec.dimension}")

    @property
    def name(self) -> str:
        return f"{self._spec.name}-{self._spec.sha256.lower()[:12]}"

    @property
    def dimension(self) -> int:
        return self._spec.dimension

    def embed(self, audio: np.ndarray, *, sample_rate: int) -> np.ndarray:
        speech = speech_for_model(
            audio,
            sample_rate=sample_rate,
            min_speech_seconds=self.min_speech_seconds,
            max_seconds=self.max_seconds,
        )
        if self._spec.front_end == "fbank80":
            model_input = _fbank80(speech)[np.newaxis, :, :]
        else:
            model_input = speech[np.newaxis, :]
        (output, *_) = self._session.run([self._output_name], {self._input_name: model_input})
        return normalized_embedding(output, dimension=self.dimension, source=self.name)


def _fbank80(speech: np.ndarray) -> np.ndarray:
    import torch
    import torchaudio.compliance.kaldi as kaldi

    # Kaldi features are computed on int16-scaled samples, as the training recipes do.
    waveform = torch.from_numpy(speech * 32768.0).unsqueeze(0)
    feats = kaldi.fbank(
        waveform,
        num_mel_bins=80,
        frame_length=25,
        frame_shift=10,
        dither=0.0,
        sample_frequency=MODEL_SAMPLE_RATE,
        window_type="hamming",
    )
    feats = feats - feats.mean(dim=0, keepdim=True)
    return feats.numpy().astype(np.float32)
