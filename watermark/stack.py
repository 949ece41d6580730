"""The configured ordered stack of schemes: embed each in turn, verify all after each step, detect all."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .audioseal_layer import AudioSealFiles
from .detection import Detection
from .errors import WatermarkConfigError, WatermarkError, WatermarkKeyError, WatermarkSelfCheckFailed
from .keyed import DEV_KEY, KeyedScheme

KNOWN_SCHEMES = ("keyed", "perth", "audioseal")
# The keyed payload is repeated in 2.05 s frames and decodes reliably from about 3 s of speech
# (docs/benchmarks/watermark.md); shorter audio carries the mark but not always a readable payload.
PAYLOAD_MIN_SECONDS = 3.0


@dataclass(frozen=True)
class WatermarkConfig:
    """What the gateway hands over from its settings; the key is bytes the gateway read from its key file."""

    schemes: tuple[str, ...] = ("keyed", "perth")
    key: bytes | None = None
    dev_mode: bool = False
    audioseal: AudioSealFiles | None = None
    max_false_positive: float = 1e-4


@dataclass(frozen=True)
class StackDetection:
    detected: bool
    schemes: tuple[Detection, ...]

    def scheme(self, name: str) -> Detection:
        for detection in self.schemes:
            if detection.scheme == name:
                return detection
        raise KeyError(name)

    def as_json(self) -> dict:
        return {"detected": self.detected, "schemes": [d.as_json() for d in self.schemes]}


class WatermarkStack:
    def __init__(self, schemes: list) -> None:
        if not schemes:
            raise WatermarkConfigError("the watermark stack is empty: every output must carry a mark")
        self.schemes = schemes

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.schemes)

    def embed(self, audio: np.ndarray, *, sample_rate: int, payload: bytes, require_payload: bool = True) -> np.ndarray:
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

    def detect(self, audio: np.ndarray, *, sample_rate: int, segments: bool = True) -> StackDetection:
        """Every scheme's detection; ``segments=False`` skips the per-segment scores (presence
        and payload only, which is all a self-check or a yes/no screen needs, and faster)."""
        found = tuple(scheme.detect(audio, sample_rate=sample_rate, segments=segments) for scheme in self.schemes)
        return StackDetection(detected=any(d.detected for d in found), schemes=found)


def resolve_key(config: WatermarkConfig) -> bytes:
    """The configured key; the public development key only in dev mode."""
    if config.key is None:
        if not config.dev_mode:
            raise WatermarkKeyError("no watermark key configured (a built-in key is allowed only in dev mode)")
        return DEV_KEY
    if config.key == DEV_KEY and not config.dev_mode:
        raise WatermarkKeyError("the built-in development watermark key is refused outside dev mode")
    return config.key


def build_stack(config: WatermarkConfig) -> WatermarkStack:
    """Build every configured scheme now, so one that cannot load stops start-up with its reason."""
    if len(set(config.schemes)) != len(config.schemes):
        raise WatermarkConfigError(f"a scheme is listed twice: {config.schemes}")
    schemes = []
    for name in config.schemes:
        try:
            if name == "keyed":
                schemes.append(KeyedScheme(resolve_key(config), max_false_positive=config.max_false_positive))
            elif name == "perth":
                from .perth_layer import PerthScheme

                schemes.append(PerthScheme())
            elif name == "audioseal":
                if config.audioseal is None:
                    raise WatermarkConfigError("scheme audioseal is configured but no AudioSeal checkpoint files are")
                from .audioseal_layer import AudioSealScheme

                schemes.append(AudioSealScheme(config.audioseal))
            else:
                raise WatermarkConfigError(f"unknown watermark scheme {name!r}; known: {', '.join(KNOWN_SCHEMES)}")
        except WatermarkError as exc:
            raise type(exc)(f"watermark scheme {name!r} failed to load: {exc}") from exc
    return WatermarkStack(schemes)
