"""The configured ordered stack of schemes: embed each in turn, verify all after each step, detect all.

The stack's verdict (``StackDetection.detected``) rests only on layers with a computed
false-positive bound: clonegate's keyed mark. A layer without one (PerTh, AudioSeal) is reported
beside it, with the false-positive rate the benchmark measured for it, and never makes the
verdict: PerTh's detector calls some unmarked tonal audio marked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from .audioseal_layer import AudioSealFiles
from .detection import Detection
from .errors import WatermarkConfigError, WatermarkError, WatermarkKeyError, WatermarkSelfCheckFailed
from .keyed import DEV_KEY, KeyedScheme
from .keyed.scheme import Candidates

KNOWN_SCHEMES = ("keyed", "perth", "audioseal")
# The keyed payload is repeated in 2.05 s frames and decodes reliably from about 3 s of speech
# (docs/benchmarks/watermark.md); shorter audio carries the mark but not always a decodable
# payload (it can still be attributed to its request among released outputs).
PAYLOAD_MIN_SECONDS = 3.0


class Scheme(Protocol):
    name: str

    def embed(
        self, audio: npt.NDArray[np.floating], *, sample_rate: int, payload: bytes
    ) -> npt.NDArray[np.floating]: ...

    def detect(self, audio: npt.NDArray[np.floating], *, sample_rate: int, segments: bool = True) -> Detection: ...


@dataclass(frozen=True)
class WatermarkConfig:
    """What the gateway hands over from its settings; the key is bytes the gateway read from its key file.

    ``schemes`` are embedded in this order (the default, keyed alone, was chosen by the watermark
    benchmark: see docs/watermark.md); ``detect_only`` are layers looked for on detection but never
    embedded (PerTh, to report marks that PerTh-marking generators leave).
    """

    schemes: tuple[str, ...] = ("keyed",)
    key: bytes | None = None
    dev_mode: bool = False
    audioseal: AudioSealFiles | None = None
    max_false_positive: float = 1e-4
    detect_only: tuple[str, ...] = ()


@dataclass(frozen=True)
class StackDetection:
    detected: bool  # a layer with a computed false-positive bound found its mark
    schemes: tuple[Detection, ...]

    @property
    def basis(self) -> tuple[str, ...]:
        """The layers the verdict rests on: those with a computed false-positive bound."""
        return tuple(d.scheme for d in self.schemes if d.false_positive_probability is not None)

    def scheme(self, name: str) -> Detection:
        for detection in self.schemes:
            if detection.scheme == name:
                return detection
        raise KeyError(name)

    def as_json(self) -> dict[str, Any]:
        return {
            "detected": self.detected,
            "verdict_basis": list(self.basis),
            "schemes": [d.as_json() for d in self.schemes],
        }


class WatermarkStack:
    def __init__(self, schemes: list[Scheme], *, detect_only: list[Scheme] | None = None) -> None:
        if not schemes:
            raise WatermarkConfigError("the watermark stack is empty: every output must carry a mark")
        self.schemes = schemes
        self.detect_only = detect_only or []

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.schemes)

    @property
    def keyed(self) -> KeyedScheme | None:
        return next((s for s in self.schemes if isinstance(s, KeyedScheme)), None)

    def embed(
        self, audio: npt.NDArray[np.floating], *, sample_rate: int, payload: bytes, require_payload: bool = True
    ) -> npt.NDArray[np.floating]:
        """Embed every layer in order; after each, every layer so far must still be found.

        Raises WatermarkEmbedFailed from a layer that cannot embed, WatermarkSelfCheckFailed when
        a layer is not detected (or, with ``require_payload``, the keyed payload does not read
        back) after embedding. Audio too short to carry a whole payload frame (see
        ``PAYLOAD_MIN_SECONDS``) can only be required to carry the mark's presence.
        """
        marked = audio
        for index, scheme in enumerate(self.schemes):
            marked = scheme.embed(marked, sample_rate=sample_rate, payload=payload)
            for earlier in self.schemes[: index + 1]:
                found = earlier.detect(marked, sample_rate=sample_rate, segments=False)
                if not found.detected:
                    raise WatermarkSelfCheckFailed(
                        f"{earlier.name} mark not detected after embedding {scheme.name} (score {found.score:.3f})"
                    )
                if earlier.name == "keyed" and require_payload and found.payload != payload:
                    raise WatermarkSelfCheckFailed(f"keyed payload did not read back after embedding {scheme.name}")
        return marked

    def detect(
        self,
        audio: npt.NDArray[np.floating],
        *,
        sample_rate: int,
        segments: bool = True,
        candidates: Candidates | None = None,
    ) -> StackDetection:
        """Every scheme's detection, embedded layers first; ``segments=False`` skips the
        per-segment scores (presence and payload only, which is all a self-check or a yes/no
        screen needs, and faster). ``candidates`` go to the keyed layer for short-clip attribution."""
        found = []
        for scheme in [*self.schemes, *self.detect_only]:
            if isinstance(scheme, KeyedScheme):
                found.append(scheme.detect(audio, sample_rate=sample_rate, segments=segments, candidates=candidates))
            else:
                found.append(scheme.detect(audio, sample_rate=sample_rate, segments=segments))
        bounded = [d for d in found if d.false_positive_probability is not None]
        return StackDetection(detected=any(d.detected for d in bounded), schemes=tuple(found))


def resolve_key(config: WatermarkConfig) -> bytes:
    """The configured key; the public development key only in dev mode."""
    if config.key is None:
        if not config.dev_mode:
            raise WatermarkKeyError("no watermark key configured (a built-in key is allowed only in dev mode)")
        return DEV_KEY
    if config.key == DEV_KEY and not config.dev_mode:
        raise WatermarkKeyError("the built-in development watermark key is refused outside dev mode")
    return config.key


def _build(name: str, config: WatermarkConfig) -> Scheme:
    try:
        if name == "keyed":
            return KeyedScheme(resolve_key(config), max_false_positive=config.max_false_positive)
        if name == "perth":
            from .perth_layer import PerthScheme

            return PerthScheme()
        if name == "audioseal":
            if config.audioseal is None:
                raise WatermarkConfigError("scheme audioseal is configured but no AudioSeal checkpoint files are")
            from .audioseal_layer import AudioSealScheme

            return AudioSealScheme(config.audioseal)
        raise WatermarkConfigError(f"unknown watermark scheme {name!r}; known: {', '.join(KNOWN_SCHEMES)}")
    except WatermarkError as exc:
        raise type(exc)(f"watermark scheme {name!r} failed to load: {exc}") from exc


def build_stack(config: WatermarkConfig) -> WatermarkStack:
    """Build every configured scheme now, so one that cannot load stops start-up with its reason."""
    if len(set(config.schemes)) != len(config.schemes):
        raise WatermarkConfigError(f"a scheme is listed twice: {config.schemes}")
    if "keyed" in config.detect_only:
        raise WatermarkConfigError("the keyed mark carries the audit identifier: it is embedded, never detect-only")
    also = tuple(name for name in dict.fromkeys(config.detect_only) if name not in config.schemes)
    return WatermarkStack(
        [_build(name, config) for name in config.schemes], detect_only=[_build(name, config) for name in also]
    )
