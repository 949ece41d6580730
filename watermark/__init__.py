"""Watermarks on every clonegate output: clonegate's keyed payload mark plus public PerTh/AudioSeal layers.

Public API (the gateway calls only these):

- ``build_stack(WatermarkConfig(...)) -> WatermarkStack``
- ``WatermarkStack.embed(audio, *, sample_rate, payload: bytes) -> np.ndarray``
- ``WatermarkStack.detect(audio, *, sample_rate, segments=True) -> StackDetection``
"""

from .audioseal_layer import AudioSealFiles
from .detection import Detection, Segment
from .errors import (
    InvalidAudio,
    InvalidPayload,
    WatermarkConfigError,
    WatermarkEmbedFailed,
    WatermarkError,
    WatermarkKeyError,
    WatermarkModelError,
    WatermarkSelfCheckFailed,
)
from .keyed import DEV_KEY, PAYLOAD_BYTES, KeyedScheme
from .stack import StackDetection, WatermarkConfig, WatermarkStack, build_stack

__all__ = [
    "DEV_KEY",
    "PAYLOAD_BYTES",
    "AudioSealFiles",
    "Detection",
    "InvalidAudio",
    "InvalidPayload",
    "KeyedScheme",
    "Segment",
    "StackDetection",
    "WatermarkConfig",
    "WatermarkConfigError",
    "WatermarkEmbedFailed",
    "WatermarkError",
    "WatermarkKeyError",
    "WatermarkModelError",
    "WatermarkSelfCheckFailed",
    "WatermarkStack",
    "build_stack",
]
