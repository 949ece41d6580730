"""Chatterbox (``chatterbox.tts.ChatterboxTTS``) inside its own engine worker, from a local
checkpoint folder (``from_local``: ``ve``, ``t3_cfg``, ``s3gen`` weights and ``tokenizer.json``).

What upstream really does (chatterbox-tts 0.1.7), and the adapter answers:
- it pins torch 2.6, numpy < 2 and transformers 5.2, so it runs only in its own worker
  environment, never beside the gateway;
- ``generate`` stops at ``max_new_tokens=1000`` speech tokens (25 per second: 40 s) and returns
  what it has: text goes in pieces of whole sentences far below that, and a piece that reaches
  the cap is refused as cut off;
- its constructor calls ``perth.PerthImplicitWatermarker()``, which is ``None`` when the PerTh
  network cannot be imported (upstream issue 198): ``load()`` says so instead of a raw TypeError.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from engine.adapters.capped import OutputCap, joined
from engine.adapters.common import pick_reference, wav_to_text
from engine.adapters.inprocess import InProcessEngine
from engine.checks import check_language, check_text, references_sha256
from engine.errors import ControlUnsupported, EngineUnavailable
from engine.interface import (
    CancelToken,
    EngineAudio,
    ReferenceClip,
    SpeakerSimilarity,
    SynthesisControls,
    VoiceProfile,
)

NAME = "chatterbox"
MAX_REFERENCE_S = 12.0  # upstream conditions on the first 10 s (DEC_COND_LEN) and 6 s (ENC_COND_LEN)
OUTPUT_CAP = OutputCap(engine=NAME, max_output_s=40.0, piece_chars=250)


class ChatterboxEngine(InProcessEngine):
    name = NAME
    package = "chatterbox-tts"
    module = "chatterbox"
    languages = frozenset({"en"})

    def __init__(
        self,
        *,
        checkpoint_dir: Path | str | None,
        device: str = "auto",
        exaggeration: float = 0.5,
        cfg_weight: float = 0.5,
    ) -> None:
        folder = Path(checkpoint_dir) if checkpoint_dir else None
        super().__init__(
            model_id=f"chatterbox:{folder.name if folder else ''}",
            device=device,
            paths={"Chatterbox checkpoint folder": folder},
        )
        self._dir = folder
        self._exaggeration, self._cfg_weight = exaggeration, cfg_weight

    def load(self) -> None:
        with self._lock:
            if self._model is None:
                import perth

                if getattr(perth, "PerthImplicitWatermarker", None) is None:
                    raise EngineUnavailable(
                        "chatterbox cannot start: resemble-perth could not import its PerTh network "
                        "(perth.PerthImplicitWatermarker is None), which Chatterbox builds at start-up"
                    )
                from chatterbox.tts import ChatterboxTTS

                self._model = ChatterboxTTS.from_local(str(self._dir), self._device)

    def prepare_voice(
        self,
        *,
        references: Sequence[ReferenceClip],
        similarity: SpeakerSimilarity | None = None,
        cancel: CancelToken | None = None,
    ) -> VoiceProfile:
        clip, audio = pick_reference(references, engine=NAME, max_s=MAX_REFERENCE_S, min_s=1.0)
        return VoiceProfile(
            engine=NAME,
            model_id=self._model_id,
            parameters={"reference_wav": wav_to_text(audio, clip.sample_rate)},
            reference_sha256=references_sha256(references),
        )

    def synthesize(
        self,
        *,
        text: str,
        language: str,
        voice: VoiceProfile,
        controls: SynthesisControls = SynthesisControls(),
        cancel: CancelToken | None = None,
    ) -> EngineAudio:
        chunks = self.synthesize_stream(text=text, language=language, voice=voice, controls=controls, cancel=cancel)
        return joined(chunks, engine=NAME)

    def synthesize_stream(
        self,
        *,
        text: str,
        language: str,
        voice: VoiceProfile,
        controls: SynthesisControls = SynthesisControls(),
        cancel: CancelToken | None = None,
    ) -> Iterator[EngineAudio]:
        """One generation per piece of whole sentences, in text order."""
        text = check_text(text)
        check_language(language, supported=self.languages)
        self.check_voice(voice)
        self._check_controls(controls)
        for piece in OUTPUT_CAP.pieces(text):
            if cancel is not None:
                cancel.raise_if_cancelled()
            yield OUTPUT_CAP.check(self.generate_piece(text=piece, voice=voice, controls=controls, cancel=cancel))

    def _check_controls(self, controls: SynthesisControls) -> None:
        if not controls.is_default:
            raise ControlUnsupported(f"{NAME} has no speed or pitch control")

    def _generate(
        self, *, text: str, reference: bytes, reference_path: str, voice: VoiceProfile, controls: SynthesisControls
    ) -> tuple[np.ndarray, int]:
        wav = self._model.generate(
            text, audio_prompt_path=reference_path, exaggeration=self._exaggeration, cfg_weight=self._cfg_weight
        )
        return wav.detach().cpu().numpy(), int(self._model.sr)
