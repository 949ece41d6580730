"""F5-TTS (``f5_tts.api.F5TTS``) inside its own engine worker, from local files.

What upstream really does (f5_tts 1.1.x), and the adapter answers:
- ``preprocess_ref_audio_text`` clips a reference longer than 12 s but keeps the whole
  transcript, so the model would be conditioned on text the audio no longer holds: a clip with
  a transcript is used only when it is at most 12 s long;
- without a transcript it would download an ASR model: the transcript is required;
- it caches each preprocessed reference in a module-level dict keyed by the file's md5 and
  never deletes the temporary file it wrote: the adapter keeps that cache to the last few
  voices and removes the files of the ones it drops;
- ``load_vocoder`` reads ``config.yaml`` and ``pytorch_model.bin`` from the local vocos folder:
  both are checked at construction.
"""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from engine.adapters.common import pick_reference, wav_to_text
from engine.adapters.inprocess import InProcessEngine
from engine.checks import references_sha256
from engine.errors import ControlUnsupported, EngineUnavailable, VoiceProfileInvalid
from engine.interface import (
    CancelToken,
    ReferenceClip,
    SpeakerSimilarity,
    SynthesisControls,
    VoiceProfile,
)

NAME = "f5-tts"
MAX_REFERENCE_S = 12.0  # upstream clips longer references (preprocess_ref_audio_text)
VOCOS_FILES = ("config.yaml", "pytorch_model.bin")
CACHED_VOICES = 8  # preprocessed references kept in upstream's cache


class F5TtsEngine(InProcessEngine):
    name = NAME
    package = "f5-tts"
    module = "f5_tts"
    languages = frozenset({"en", "zh"})

    def __init__(
        self,
        *,
        checkpoint: Path | str | None,
        vocab_file: Path | str | None,
        vocoder_dir: Path | str | None,
        model: str = "F5TTS_v1_Base",
        device: str = "auto",
    ) -> None:
        checkpoint, vocab_file, vocoder_dir = (Path(p) if p else None for p in (checkpoint, vocab_file, vocoder_dir))
        vocoder_files = {
            f"vocos vocoder file {name}": (vocoder_dir / name if vocoder_dir else None) for name in VOCOS_FILES
        }
        super().__init__(
            model_id=f"{model}:{checkpoint.name if checkpoint else ''}",
            device=device,
            paths={"F5-TTS checkpoint": checkpoint, "F5-TTS vocabulary file": vocab_file, **vocoder_files},
        )
        self._model_name, self._checkpoint, self._vocab, self._vocoder = model, checkpoint, vocab_file, vocoder_dir
        self._cached: OrderedDict[str, None] = OrderedDict()  # md5 keys of upstream's cache, oldest first

    def load(self) -> None:
        with self._lock:
            if self._model is None:
                from f5_tts.api import F5TTS

                self._model = F5TTS(
                    model=self._model_name,
                    ckpt_file=str(self._checkpoint),
                    vocab_file=str(self._vocab),
                    vocoder_local_path=str(self._vocoder),
                    device=self._device,
                )

    def prepare_voice(
        self,
        *,
        references: Sequence[ReferenceClip],
        similarity: SpeakerSimilarity | None = None,
        cancel: CancelToken | None = None,
    ) -> VoiceProfile:
        clip, audio = pick_reference(
            references, engine=NAME, max_s=MAX_REFERENCE_S, min_s=1.0, uses_transcript=True, needs_transcript=True
        )
        return VoiceProfile(
            engine=NAME,
            model_id=self._model_id,
            parameters={
                "reference_wav": wav_to_text(audio, clip.sample_rate),
                "transcript": (clip.transcript or "").strip(),
            },
            reference_sha256=references_sha256(references),
        )

    def _check_controls(self, controls: SynthesisControls) -> None:
        if controls.pitch_semitones != 0.0:
            raise ControlUnsupported(f"{NAME} has no pitch control")

    def _generate(
        self, *, text: str, reference: bytes, reference_path: str, voice: VoiceProfile, controls: SynthesisControls
    ) -> tuple[np.ndarray, int]:
        transcript = voice.parameters.get("transcript")
        if not isinstance(transcript, str) or not transcript:
            raise VoiceProfileInvalid(f"{NAME} voice profile has no reference transcript")
        try:
            wav, rate, _ = self._model.infer(
                ref_file=reference_path, ref_text=transcript, gen_text=text, speed=controls.speed, show_info=_quiet
            )
        finally:
            self._bound_cache(hashlib.md5(reference, usedforsecurity=False).hexdigest())
        return np.asarray(wav), int(rate)

    def _bound_cache(self, key: str) -> None:
        """Keep upstream's preprocessed-reference cache to the last CACHED_VOICES voices."""
        from f5_tts.infer import utils_infer

        cache = getattr(utils_infer, "_ref_audio_cache", None)
        if not isinstance(cache, dict):
            raise EngineUnavailable(f"{NAME}: the installed f5_tts has no reference cache this adapter knows")
        self._cached.pop(key, None)
        self._cached[key] = None
        for stale in [k for k in cache if k not in self._cached]:
            _remove(cache.pop(stale))
        while len(self._cached) > CACHED_VOICES:
            oldest, _ = self._cached.popitem(last=False)
            _remove(cache.pop(oldest, None))


def _remove(path: object) -> None:
    if isinstance(path, str) and os.path.isfile(path):
        os.unlink(path)


def _quiet(*_: object) -> None:
    """F5's show_info callback: its progress messages are not logged."""
