"""A small engine for the engine-worker tests, run inside real Ray Serve replicas.

The embedded engine takes seconds per sentence on these shared cores; this one answers each
sentence with a tone in a few milliseconds, so the tests spend their time on what Ray does
(routing, streaming, cancellation, replica death). Words in the text switch on behaviours:
``slowly`` (each sentence takes 0.4 s, checking the cancel token every 20 ms), ``nan``,
``silence`` and ``ultrasonic`` (a sample rate no pipeline accepts). Every replica appends what it
did to ``<log_dir>/events.log`` as ``<pid> <event> <text>`` lines, which is how the tests see
which replica served a request and that a cancellation reached the engine.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from engine.checks import check_language, check_text, references_sha256
from engine.embedded import EmbeddedEngine
from engine.interface import (
    CancelToken,
    CloningEngine,
    EngineAudio,
    EngineDescription,
    ReferenceClip,
    SpeakerSimilarity,
    SynthesisControls,
    VoiceProfile,
    concatenate_chunks,
)
from engine.text import split_sentences

RATE = 16000
SECONDS_PER_CHAR = 0.06


class ToneEngine(CloningEngine):
    name = "tone-test-engine"
    sentence_pause_s = 0.1

    def __init__(self, *, log_dir: str) -> None:
        self._log = Path(log_dir) / "events.log"

    def _record(self, event: str, text: str) -> None:
        with self._log.open("a") as log:
            log.write(f"{os.getpid()} {event} {text}\n")

    def describe(self) -> EngineDescription:
        return EngineDescription(name=self.name, version="1", model_id="tone-1", device="cpu")

    def supported_languages(self) -> frozenset[str]:
        return frozenset({"en"})

    def load(self) -> None:
        self._record("loaded", "-")

    def prepare_voice(
        self,
        *,
        references: Sequence[ReferenceClip],
        similarity: SpeakerSimilarity | None = None,
        cancel: CancelToken | None = None,
    ) -> VoiceProfile:
        return VoiceProfile(
            engine=self.name,
            model_id="tone-1",
            parameters={"frequency": 220.0},
            reference_sha256=references_sha256(references),
        )

    def synthesize_stream(
        self,
        *,
        text: str,
        language: str,
        voice: VoiceProfile,
        controls: SynthesisControls = SynthesisControls(),
        cancel: CancelToken | None = None,
    ) -> Iterator[EngineAudio]:
        check_language(language, supported=self.supported_languages())
        self.check_voice(voice)
        text = check_text(text)
        self._record("started", text)
        for sentence in split_sentences(text):
            if "slowly" in text:
                end = time.monotonic() + 0.4
                while time.monotonic() < end:
                    if cancel is not None and cancel.cancelled:
                        self._record("cancelled", text)
                        cancel.raise_if_cancelled()
                    time.sleep(0.02)
            seconds = len(sentence) * SECONDS_PER_CHAR
            t = np.arange(int(seconds * RATE)) / RATE
            samples = 0.3 * np.sin(2 * np.pi * float(voice.parameters["frequency"]) * t)
            rate = RATE
            if "nan" in sentence:
                samples[len(samples) // 2] = np.nan
            if "silence" in sentence:
                samples = np.zeros_like(samples)
            if "ultrasonic" in sentence:
                rate = 96000
            yield EngineAudio(samples=samples.astype(np.float32), sample_rate=rate)
        self._record("finished", text)

    def synthesize(
        self,
        *,
        text: str,
        language: str,
        voice: VoiceProfile,
        controls: SynthesisControls = SynthesisControls(),
        cancel: CancelToken | None = None,
    ) -> EngineAudio:
        chunks = list(
            self.synthesize_stream(text=text, language=language, voice=voice, controls=controls, cancel=cancel)
        )
        return concatenate_chunks(chunks, gap_s=self.sentence_pause_s)


class LoggedEmbeddedEngine(EmbeddedEngine):
    """The real embedded engine, recording which replica starts each synthesis (so a test can
    kill exactly that replica)."""

    def __init__(self, *, log_dir: str, **options: Any) -> None:
        super().__init__(**options)
        self._log = Path(log_dir) / "events.log"

    def synthesize_stream(self, *, text: str, **kwargs: Any) -> Iterator[EngineAudio]:
        with self._log.open("a") as log:
            log.write(f"{os.getpid()} started {text}\n")
        yield from super().synthesize_stream(text=text, **kwargs)
