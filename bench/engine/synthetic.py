"""The engine benchmark's synthetic owners: Festival and espeak-ng voices that can read a real
consent statement, so both ways of getting parallel speech are measured on the same voice:

- "references": only the reference recording, with what the recognizer heard in it;
- "statement + references": the consent statement (its text is known) and the same reference.

Each voice reads its reference and statement as take 0 and 1, and the held-out text as take 2
(bench.consent.voices varies rate and pitch slightly per take, as a person's readings differ).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from bench.consent.voices import SyntheticVoice, espeak_voice, festival_voice
from engine.embedded import EmbeddedEngine
from engine.interface import ReferenceClip
from policy.consent.statement_text import DEFAULT_TEMPLATES, render_statement

REFERENCE_TEXT = (
    "The stale smell of old beer lingers. A pot of tea helps to pass the evening. "
    "The swan dive was far short of perfect."
)
HELD_OUT_TEXT = "Open the crate but don't break the glass. The wrist was badly strained and hung limp."
SPOKEN_TEXT = "The birch canoe slid on the smooth planks. Glue the sheet to the dark blue background."
STATEMENT = render_statement(
    template=DEFAULT_TEMPLATES["en"],
    owner_name="Morgan Avery",
    grantee_name="clonegate",
    purposes=("voice_cloning",),
    phrase=("amber", "garden", "river", "candle"),
)
PATHS = ("references", "statement + references")


def voices() -> list[SyntheticVoice]:
    """Festival's male diphone voice, espeak-ng's US voice and two of its female variants."""
    return [festival_voice(), espeak_voice("en-us"), espeak_voice("en-us+f3"), espeak_voice("en-gb+f2")]


def run(
    engine: EmbeddedEngine,
    scorers: Any,
    heard: Callable[[np.ndarray, int], str],
    errors: Callable[[str, str], tuple[int, int]],
) -> list[dict[str, Any]]:
    """One row per voice and path: similarity to the held-out reading, word errors, DNSMOS."""
    rows = []
    for voice in voices():
        reference, rate = voice.speak(REFERENCE_TEXT, take=0)
        statement, statement_rate = voice.speak(STATEMENT.text, take=1)
        held_out, held_rate = voice.speak(HELD_OUT_TEXT, take=2)
        target = scorers.embed(held_out, held_rate)
        transcript = heard(reference, rate)
        reference_clip = ReferenceClip(reference, rate, transcript=transcript)
        statement_clip = ReferenceClip(statement, statement_rate, transcript=STATEMENT.text)
        plain = engine.synthesize_unadapted(text=SPOKEN_TEXT)
        plain_similarity = float(scorers.embed(plain.samples, plain.sample_rate) @ target)
        for path, clips in zip(PATHS, ([reference_clip], [statement_clip, reference_clip]), strict=True):
            voice_profile = engine.prepare_voice(references=clips, similarity=scorers.similarity)
            out = engine.synthesize(text=SPOKEN_TEXT, language="en", voice=voice_profile)
            wrong, total = errors(SPOKEN_TEXT, scorers.transcribe(out.samples, out.sample_rate))
            rows.append(
                {
                    "voice": voice.name,
                    "path": path,
                    "recognizer_heard": transcript,
                    "plain_similarity": plain_similarity,
                    "adapted_similarity": float(scorers.embed(out.samples, out.sample_rate) @ target),
                    "ceiling_similarity": float(scorers.embed(reference, rate) @ target),
                    "adapted_dnsmos": scorers.dnsmos_ovrl(out.samples, out.sample_rate),
                    "word_errors": wrong,
                    "words": total,
                    "prepare_s": voice_profile.metrics["prepare_seconds"],
                    "mapping_strength": voice_profile.parameters["adaptation"]["mapping_strength"],
                    "mapping_pairs": int(voice_profile.metrics["mapping_pairs"]),
                }
            )
            print(
                f"{voice.name:22s} {path:24s} sim {rows[-1]['adapted_similarity']:.3f} "
                f"(plain {plain_similarity:.3f}) dnsmos {rows[-1]['adapted_dnsmos']:.2f}",
                flush=True,
            )
    return rows
