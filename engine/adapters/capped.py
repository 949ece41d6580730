"""Engines that stop generating at a fixed output length (Zonos at 30 s, Chatterbox at 40 s).

Such an engine cuts a long text off silently: the audio simply ends. The adapter therefore
sends whole sentences, packed into pieces far shorter than the cap at any plausible speaking
rate, and refuses a piece whose audio reaches the cap, because that piece was cut off (or the
model ran away): a truncated sentence is never released.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from engine.errors import EngineOutputInvalid
from engine.interface import EngineAudio, concatenate_chunks
from engine.text import pack_sentences

# Audio this close to the cap counts as cut off: the engine stopped, the text did not end.
CAP_MARGIN_S = 1.0
PIECE_GAP_S = 0.12  # the pause between pieces synthesised by separate calls


@dataclass(frozen=True)
class OutputCap:
    engine: str
    max_output_s: float
    # Characters per call at speed 1.0: about a third of what the cap holds at a brisk rate.
    piece_chars: int

    def pieces(self, text: str, *, speed: float = 1.0) -> list[str]:
        """The text as whole sentences packed into pieces that fit under the cap at ``speed``."""
        return pack_sentences(text, max_chars=max(40, int(self.piece_chars * speed)))

    def check(self, audio: EngineAudio) -> EngineAudio:
        if audio.duration_s >= self.max_output_s - CAP_MARGIN_S:
            raise EngineOutputInvalid(
                f"{self.engine} returned {audio.duration_s:.1f} s for one piece, at its {self.max_output_s:.0f} s "
                "output cap: the speech was cut off"
            )
        return audio


def joined(chunks: Iterator[EngineAudio], *, engine: str) -> EngineAudio:
    """Pieces synthesised one by one, joined in order with a short pause."""
    try:
        return concatenate_chunks(list(chunks), gap_s=PIECE_GAP_S)
    except ValueError as exc:  # no pieces, or pieces at different rates
        raise EngineOutputInvalid(f"{engine} pieces cannot be joined: {exc}") from exc
