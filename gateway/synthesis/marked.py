"""Marked audio: the only form in which engine output may leave the gateway.

`EngineAudio` (what engines return) has no way to become bytes. `MarkedAudio` can be encoded
into a response, and only `mark_output` can make one: it embeds the whole watermark stack with
the audit identifier as payload (the stack re-detects every layer after each embedding) and then
checks on its own that the keyed payload reads back from exactly the samples it releases.
"""

from __future__ import annotations

import numpy as np

from engine.interface import EngineAudio
from gateway.metrics import WATERMARK_SELF_CHECK_FAILURES, WATERMARK_SELF_CHECK_RETRIES
from watermark import WatermarkSelfCheckFailed, WatermarkStack
from watermark.stack import PAYLOAD_MIN_SECONDS

_MINT = object()  # only this module holds it, so only mark_output constructs MarkedAudio


class MarkedAudio:
    __slots__ = ("payload", "sample_rate", "samples")

    def __init__(self, mint: object, *, samples: np.ndarray, sample_rate: int, payload: bytes) -> None:
        if mint is not _MINT:
            raise TypeError("MarkedAudio is made only by mark_output, after the watermark self-check")
        samples = np.ascontiguousarray(samples, dtype=np.float32)
        samples.setflags(write=False)
        self.samples = samples
        self.sample_rate = sample_rate
        self.payload = payload

    @property
    def watermark_id(self) -> str:
        return self.payload.hex()


# For a few (audio, payload) pairs, mostly short utterances, the keyed payload does not read back
# after embedding. A little silence before the speech moves it against the payload's frame grid
# and the mark then verifies; in trials on short Piper utterances a lead fixed such failures more
# often than a silent tail did. Pairs of (lead, tail) seconds, tried in order; if none verifies,
# the output is refused.
SELF_CHECK_PADDING_S = ((0.0, 0.0), (0.1, 0.0), (0.2, 0.0), (0.0, 0.25), (0.3, 0.0), (0.0, 0.5), (0.0, 1.0))


def mark_output(stack: WatermarkStack, audio: EngineAudio, *, payload: bytes) -> MarkedAudio:
    """Embed every layer (the stack re-detects each), then check the keyed layer independently.

    From `PAYLOAD_MIN_SECONDS` of audio on, the keyed payload, which points at the audit record,
    must read back from exactly the samples released. A shorter utterance cannot hold a whole
    payload frame: it must carry the keyed mark's presence at the detector's false-positive
    bound. The detector then says the audio is ours but not which request made it; only the
    exact file can still be tied to its request, through the `released` event's output hash.
    """
    short = audio.duration_s < PAYLOAD_MIN_SECONDS
    failure: WatermarkSelfCheckFailed | None = None
    for attempt, (lead_s, tail_s) in enumerate(SELF_CHECK_PADDING_S):
        if attempt:
            WATERMARK_SELF_CHECK_RETRIES.inc()
        source = np.concatenate(
            [
                np.zeros(int(lead_s * audio.sample_rate), np.float32),
                audio.samples,
                np.zeros(int(tail_s * audio.sample_rate), np.float32),
            ]
        )
        try:
            marked = stack.embed(source, sample_rate=audio.sample_rate, payload=payload, require_payload=not short)
            verify_keyed_mark(stack, marked, sample_rate=audio.sample_rate, payload=payload)
            break
        except WatermarkSelfCheckFailed as exc:
            failure = exc
    else:
        assert failure is not None  # the loop ran and every attempt failed
        WATERMARK_SELF_CHECK_FAILURES.inc()
        raise failure
    if marked.shape != source.shape or not np.all(np.isfinite(marked)):
        raise WatermarkSelfCheckFailed("the watermark stack changed the length or produced non-finite samples")
    return MarkedAudio(_MINT, samples=marked, sample_rate=audio.sample_rate, payload=payload)


def verify_keyed_mark(stack: WatermarkStack, samples: np.ndarray, *, sample_rate: int, payload: bytes) -> None:
    """The pipeline's own check of the keyed layer, independent of the stack's (about 20 ms for
    10 s): the payload from `PAYLOAD_MIN_SECONDS` on, the mark's presence below that."""
    keyed = next((scheme for scheme in stack.schemes if scheme.name == "keyed"), None)
    if keyed is None:
        raise WatermarkSelfCheckFailed("the watermark stack has no keyed layer to carry the audit identifier")
    found = keyed.detect(samples, sample_rate=sample_rate, segments=False)
    if len(samples) / sample_rate < PAYLOAD_MIN_SECONDS:
        if not found.detected:
            raise WatermarkSelfCheckFailed("the keyed mark is not detected in the short output")
    elif not found.payload_verified or found.payload != payload:
        raise WatermarkSelfCheckFailed("the keyed payload does not verify after embedding")
