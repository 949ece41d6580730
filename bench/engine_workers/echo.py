"""An engine that answers at once with ready audio: run in a worker, what its calls cost is the
Ray hop alone (routing, the streamed sentences' transfer, the client's checks)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

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

RATE = 22050  # the embedded engine's rate
SECONDS_PER_CHAR = 0.065  # about the embedded voice's speaking rate


class EchoEngine(CloningEngine):
    name = "echo-bench-engine"
    sentence_pause_s = 0.18

    def __init__(self) -> None:
        noise = np.random.default_rng(0).standard_normal(RATE * 30)
        self._audio = (0.1 * noise).astype(np.float32)

    def describe(self) -> EngineDescription:
        return EngineDescription(name=self.name, version="1", model_id="echo", device="cpu")

    def supported_languages(self) -> frozenset[str]:
        return frozenset({"en"})

    def prepare_voice(
        self,
        *,
        references: Sequence[ReferenceClip],
        similarity: SpeakerSimilarity | None = None,
        cancel: CancelToken | None = None,
    ) -> VoiceProfile:
        return VoiceProfile(engine=self.name, model_id="echo", parameters={}, reference_sha256="0" * 64)

    def synthesize_stream(
        self,
        *,
        text: str,
        language: str,
        voice: VoiceProfile,
        controls: SynthesisControls = SynthesisControls(),
        cancel: CancelToken | None = None,
    ) -> Iterator[EngineAudio]:
        for sentence in split_sentences(text):
            yield EngineAudio(samples=self._audio[: int(len(sentence) * SECONDS_PER_CHAR * RATE)], sample_rate=RATE)

    def synthesize(
        self,
        *,
        text: str,
        language: str,
        voice: VoiceProfile,
        controls: SynthesisControls = SynthesisControls(),
        cancel: CancelToken | None = None,
    ) -> EngineAudio:
        chunks = list(self.synthesize_stream(text=text, language=language, voice=voice, controls=controls))
        return concatenate_chunks(chunks, gap_s=self.sentence_pause_s)
