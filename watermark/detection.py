"""The one result type every scheme returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Segment:
    """A stretch of the input and how strongly the mark was seen there (a z-score or a model score)."""

    start_s: float
    end_s: float
    score: float


@dataclass(frozen=True)
class Detection:
    """What one scheme found in one input.

    ``false_positive_probability`` is the probability that unmarked audio scores at least
    ``score`` under this scheme's detector (for the keyed scheme a computed bound from the
    statistic's null distribution; None for a neural layer without one). The keyed scheme sets
    ``payload`` only when it authenticated the decoded message (``payload_verified``,
    ``payload_source`` "decoded") or when the audio matched one of the released outputs it was
    given as candidates within its false-positive threshold (``payload_source`` "attributed");
    ``false_attribution_probability`` bounds the chance that the payload names the wrong request.
    A public layer may report its raw message with ``payload_verified`` false, which proves
    nothing about who made the audio.
    """

    scheme: str
    detected: bool
    score: float
    false_positive_probability: float | None
    payload: bytes | None = None
    payload_verified: bool = False
    segments: tuple[Segment, ...] = field(default_factory=tuple)
    warp: dict[str, float | str] | None = None  # keyed: the warp undone by the best alignment
    payload_source: str | None = None  # keyed: "decoded" (tag verified) or "attributed" (matched a candidate)
    false_attribution_probability: float | None = None  # keyed: bound that the payload names the wrong request
    # a layer without a computed bound: the false-positive rate the benchmark measured, per kind of audio
    empirical_false_positive_rate: dict[str, float] | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.scheme,
            "detected": self.detected,
            "score": round(float(self.score), 4),
            "false_positive_probability": self.false_positive_probability,
            "payload": self.payload.hex() if self.payload is not None else None,
            "payload_verified": self.payload_verified,
            "segments": [[round(s.start_s, 3), round(s.end_s, 3), round(s.score, 3)] for s in self.segments],
            **({"warp": self.warp} if self.warp is not None else {}),
            **(
                {
                    "payload_source": self.payload_source,
                    "false_attribution_probability": self.false_attribution_probability,
                }
                if self.payload_source is not None
                else {}
            ),
            **(
                {"empirical_false_positive_rate": self.empirical_false_positive_rate}
                if self.empirical_false_positive_rate is not None
                else {}
            ),
        }
