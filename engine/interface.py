"""The engine interface: what every cloning engine takes and returns.

Engines see text, a language code, reference audio and a stored voice profile. They never see
tokens, consent records or the database: the gateway decides whether a request may run at all.
"""

from __future__ import annotations

import json
import math
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.errors import ControlOutOfRange, EngineCancelled, VoiceProfileInvalid

# (candidate audio, its sample rate, reference audio, its sample rate) -> similarity, higher is
# more alike. The caller supplies it (the gateway wraps its speaker encoder) so that `engine`
# depends on no speaker-verification code of ours.
SpeakerSimilarity = Callable[[np.ndarray, int, np.ndarray, int], float]

PROFILE_FORMAT_VERSION = 1


@dataclass(frozen=True)
class EngineDescription:
    """Identifies the engine in audit events."""

    name: str
    version: str
    model_id: str
    device: str

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "version": self.version, "model_id": self.model_id, "device": self.device}


@dataclass(frozen=True)
class ReferenceClip:
    """One reference recording: mono float samples with an explicit rate, optional transcript
    and language code (GPT-SoVITS and F5-TTS condition on what the reference says)."""

    audio: np.ndarray
    sample_rate: int
    transcript: str | None = None
    language: str | None = None


@dataclass(frozen=True)
class SynthesisControls:
    """User-facing controls. ``speed`` 1.0 is the voice's natural rate; pitch in semitones."""

    speed: float = 1.0
    pitch_semitones: float = 0.0

    SPEED_RANGE = (0.5, 2.0)
    PITCH_RANGE = (-12.0, 12.0)

    def __post_init__(self) -> None:
        for name, value, (low, high) in (
            ("speed", self.speed, self.SPEED_RANGE),
            ("pitch_semitones", self.pitch_semitones, self.PITCH_RANGE),
        ):
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
                raise ControlOutOfRange(f"{name} must be a finite number, got {value!r}")
            if not low <= value <= high:
                raise ControlOutOfRange(f"{name} must be within [{low}, {high}], got {value}")

    @property
    def is_default(self) -> bool:
        return self.speed == 1.0 and self.pitch_semitones == 0.0


@dataclass(frozen=True, eq=False)
class EngineAudio:
    """Engine output: mono float32 samples in [-1, 1] and their sample rate.

    Deliberately has no bytes/encode/serialise method: the pipeline wraps it and only releases
    audio after watermarking. The array is made read-only so nothing edits it after checks.
    """

    samples: np.ndarray
    sample_rate: int

    def __post_init__(self) -> None:
        samples = np.ascontiguousarray(self.samples, dtype=np.float32)
        samples.setflags(write=False)
        object.__setattr__(self, "samples", samples)

    @property
    def duration_s(self) -> float:
        return len(self.samples) / float(self.sample_rate)


@dataclass(frozen=True)
class VoiceProfile:
    """Plain, JSON-serialisable data the gateway stores for a prepared voice.

    ``parameters`` holds whatever the engine needs (adaptation parameters, latents, a reference
    excerpt). ``reference_sha256`` identifies the reference audio the voice was prepared from.
    """

    engine: str
    model_id: str
    parameters: dict[str, Any]
    reference_sha256: str
    format_version: int = PROFILE_FORMAT_VERSION
    metrics: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(
            {
                "engine": self.engine,
                "model_id": self.model_id,
                "format_version": self.format_version,
                "reference_sha256": self.reference_sha256,
                "parameters": self.parameters,
                "metrics": self.metrics,
            },
            sort_keys=True,
            allow_nan=False,
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> VoiceProfile:
        try:
            data = json.loads(text)
        except (ValueError, TypeError) as exc:
            raise VoiceProfileInvalid(f"voice profile is not JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise VoiceProfileInvalid("voice profile must be a JSON object")
        expected = {
            "engine": str,
            "model_id": str,
            "format_version": int,
            "reference_sha256": str,
            "parameters": dict,
            "metrics": dict,
        }
        for key, kind in expected.items():
            if not isinstance(data.get(key), kind) or isinstance(data.get(key), bool):
                raise VoiceProfileInvalid(f"voice profile field {key!r} missing or not {kind.__name__}")
        if data["format_version"] != PROFILE_FORMAT_VERSION:
            raise VoiceProfileInvalid(f"voice profile format {data['format_version']} is not supported")
        return cls(
            engine=data["engine"],
            model_id=data["model_id"],
            parameters=data["parameters"],
            reference_sha256=data["reference_sha256"],
            format_version=data["format_version"],
            metrics=data["metrics"],
        )


class CancelToken:
    """Set by the executor (timeout) or the caller (client went away); engines check it."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[], None]] = []
        self.reason = ""

    def cancel(self, reason: str = "cancelled") -> None:
        with self._lock:
            self.reason = reason  # the latest reason counts, as before callbacks existed
            self._event.set()
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()

    def on_cancel(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Run ``callback`` when the token is cancelled (at once if it already is), e.g. to pass
        the cancellation on to a remote call; returns a function that unsubscribes it."""
        with self._lock:
            if not self._event.is_set():
                self._callbacks.append(callback)
                return lambda: self._unsubscribe(callback)
        callback()
        return lambda: None

    def _unsubscribe(self, callback: Callable[[], None]) -> None:
        with self._lock:
            if callback in self._callbacks:
                self._callbacks.remove(callback)

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise EngineCancelled(f"synthesis stopped: {self.reason}")


class CloningEngine(ABC):
    """One voice-cloning engine. Implementations must be safe to call from worker threads."""

    name: str = "engine"
    # The pause ``synthesize`` puts between the sentences ``synthesize_stream`` yields, so a
    # caller joining streamed sentences (an engine worker's client) gets the same audio.
    sentence_pause_s: float = 0.0

    @abstractmethod
    def describe(self) -> EngineDescription: ...

    @abstractmethod
    def supported_languages(self) -> frozenset[str]: ...

    def load(self) -> None:  # noqa: B027 (optional: an engine with nothing to load keeps it)
        """Load models (slow). Idempotent. Construction only checks that loading can work."""

    def warm_up(self) -> None:  # noqa: B027 (optional, like load)
        """Run one short synthesis so the first real request pays no one-off costs."""

    @abstractmethod
    def prepare_voice(
        self,
        *,
        references: Sequence[ReferenceClip],
        similarity: SpeakerSimilarity | None = None,
        cancel: CancelToken | None = None,
    ) -> VoiceProfile: ...

    def synthesize_stream(
        self,
        *,
        text: str,
        language: str,
        voice: VoiceProfile,
        controls: SynthesisControls = SynthesisControls(),
        cancel: CancelToken | None = None,
    ) -> Iterator[EngineAudio]:
        """Audio in text order, one chunk per sentence where the engine can; default: one chunk."""
        yield self.synthesize(text=text, language=language, voice=voice, controls=controls, cancel=cancel)

    @abstractmethod
    def synthesize(
        self,
        *,
        text: str,
        language: str,
        voice: VoiceProfile,
        controls: SynthesisControls = SynthesisControls(),
        cancel: CancelToken | None = None,
    ) -> EngineAudio: ...

    def check_voice(self, voice: VoiceProfile) -> None:
        """Refuse a profile prepared by another engine or model."""
        description = self.describe()
        if voice.engine != self.name:
            raise VoiceProfileInvalid(f"voice was prepared by engine {voice.engine!r}, not {self.name!r}")
        if voice.model_id != description.model_id:
            raise VoiceProfileInvalid(
                f"voice was prepared for model {voice.model_id!r}, engine runs {description.model_id!r}"
            )


def concatenate_chunks(chunks: Sequence[EngineAudio], *, gap_s: float = 0.0) -> EngineAudio:
    """Join sentence chunks (all at one rate) with an optional pause between them."""
    if not chunks:
        raise ValueError("no chunks to join")
    rate = chunks[0].sample_rate
    if any(chunk.sample_rate != rate for chunk in chunks):
        raise ValueError("chunks have different sample rates")
    gap = np.zeros(round(gap_s * rate), dtype=np.float32)
    parts: list[np.ndarray] = []
    for index, chunk in enumerate(chunks):
        if index and gap.size:
            parts.append(gap)
        parts.append(chunk.samples)
    return EngineAudio(samples=np.concatenate(parts), sample_rate=rate)
