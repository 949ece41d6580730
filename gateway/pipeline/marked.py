"""Marked audio: the only form in which engine output may leave the gateway.

`EngineAudio` (what engines return) has no way to become bytes. `MarkedAudio` can be encoded
into a response, and only `mark_output` can make one: it embeds the whole watermark stack with
the audit identifier as payload and then proves, by detecting it again, that the keyed mark is
present and its payload verifies.
"""

from __future__ import annotations

import numpy as np

from engine.interface import EngineAudio
from watermark import StackDetection, WatermarkSelfCheckFailed, WatermarkStack

_MINT = object()  # only this module holds it, so only mark_output constructs MarkedAudio


class MarkedAudio:
    __slots__ = ("samples", "sample_rate", "payload", "detection")

    def __init__(self, mint: object, *, samples: np.ndarray, sample_rate: int, payload: bytes,
                 detection: StackDetection) -> None:
        if mint is not _MINT:
            raise TypeError("MarkedAudio is made only by mark_output, after the watermark self-check")
        samples = np.ascontiguousarray(samples, dtype=np.float32)
        samples.setflags(write=False)
        self.samples = samples
        self.sample_rate = sample_rate
        self.payload = payload
        self.detection = detection

    @property
    def watermark_id(self) -> str:
        return self.payload.hex()


# For a few (audio, payload) pairs the keyed payload does not read back after embedding (about
# one short utterance in sixteen). A short silent tail moves the frame grid against the speech
# and the mark then verifies; if no attempt verifies, the output is refused as before.
SELF_CHECK_TAILS_S = (0.0, 0.25, 0.5)


def mark_output(stack: WatermarkStack, audio: EngineAudio, *, payload: bytes) -> MarkedAudio:
    """Embed every layer, then check the result the way a detector would see it."""
    failure: WatermarkSelfCheckFailed | None = None
    for tail_s in SELF_CHECK_TAILS_S:
        source = np.concatenate([audio.samples, np.zeros(int(tail_s * audio.sample_rate), np.float32)])
        try:
            marked = stack.embed(source, sample_rate=audio.sample_rate, payload=payload)
            break
        except WatermarkSelfCheckFailed as exc:
            failure = exc
    else:
        raise failure
    if marked.shape != source.shape or not np.all(np.isfinite(marked)):
        raise WatermarkSelfCheckFailed("the watermark stack changed the length or produced non-finite samples")
    detection = stack.detect(marked, sample_rate=audio.sample_rate)
    missing = [found.scheme for found in detection.schemes if not found.detected]
    if missing:
        raise WatermarkSelfCheckFailed(f"marks not detected after embedding: {', '.join(missing)}")
    keyed = detection.scheme("keyed")
    if not keyed.payload_verified or keyed.payload != payload:
        raise WatermarkSelfCheckFailed("the keyed payload does not verify after embedding")
    return MarkedAudio(_MINT, samples=marked, sample_rate=audio.sample_rate, payload=payload, detection=detection)
