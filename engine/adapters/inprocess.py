"""F5-TTS and Chatterbox, run inside the gateway process from local checkpoints.

Both packages are optional extras, never installed by default. Construction checks that the
package is importable and every checkpoint path exists, so a misconfigured gateway fails at
start-up with one message naming everything missing; ``load()`` then reads the weights.
Nothing here downloads: F5-TTS gets explicit checkpoint, vocabulary and vocoder paths and a
reference transcript (without one it would fetch an ASR model), Chatterbox uses ``from_local``.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from engine.adapters.common import pick_reference, require_installed, torch_device, wav_from_profile, wav_to_text
from engine.checks import check_language, check_text, references_sha256
from engine.errors import ControlUnsupported, EngineOutputInvalid, ReferenceInvalid, VoiceProfileInvalid
from engine.interface import (
    CancelToken,
    CloningEngine,
    EngineAudio,
    EngineDescription,
    ReferenceClip,
    SpeakerSimilarity,
    SynthesisControls,
    VoiceProfile,
)

MAX_REFERENCE_S = 12.0  # both models condition on at most ~10–12 s of reference


class _InProcessEngine(CloningEngine):
    package = ""
    module = ""
    languages: frozenset[str] = frozenset()

    def __init__(self, *, model_id: str, device: str, paths: dict[str, Path | None]) -> None:
        require_installed(engine=self.name, package=self.package, module=self.module, paths=paths)
        self._device = torch_device(device)
        self._model_id = model_id
        self._model = None
        self._lock = threading.Lock()  # one generation at a time per loaded model

    def describe(self) -> EngineDescription:
        from importlib.metadata import PackageNotFoundError, version

        try:
            package_version = version(self.package)
        except PackageNotFoundError:
            package_version = "unknown"
        return EngineDescription(
            name=self.name, version=f"{self.package} {package_version}", model_id=self._model_id, device=self._device
        )

    def supported_languages(self) -> frozenset[str]:
        return self.languages

    def prepare_voice(
        self,
        *,
        references: Sequence[ReferenceClip],
        similarity: SpeakerSimilarity | None = None,
        cancel: CancelToken | None = None,
    ) -> VoiceProfile:
        clip, audio = pick_reference(references, max_s=MAX_REFERENCE_S)
        return VoiceProfile(
            engine=self.name,
            model_id=self._model_id,
            parameters={
                "reference_wav": wav_to_text(audio, clip.sample_rate),
                "transcript": (clip.transcript or "").strip(),
            },
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
        text = check_text(text)
        check_language(language, supported=self.languages)
        self.check_voice(voice)
        reference = wav_from_profile(voice.parameters)
        self.load()
        if cancel is not None:
            cancel.raise_if_cancelled()
        # The packages take a reference *file*; a private temporary file is removed right after.
        handle, path = tempfile.mkstemp(suffix=".wav")
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(reference)
            with self._lock:
                samples, rate = self._generate(text=text, reference_path=path, voice=voice, controls=controls)
        finally:
            os.unlink(path)
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        if samples.size == 0:
            raise EngineOutputInvalid(f"{self.name} returned no audio")
        return EngineAudio(samples=samples, sample_rate=int(rate))

    def _generate(
        self, *, text: str, reference_path: str, voice: VoiceProfile, controls: SynthesisControls
    ) -> tuple[np.ndarray, int]:
        raise NotImplementedError


class F5TtsEngine(_InProcessEngine):
    name = "f5-tts"
    package = "f5-tts"
    module = "f5_tts"
    languages = frozenset({"en", "zh"})

    def __init__(
        self,
        *,
        checkpoint: Path | None,
        vocab_file: Path | None,
        vocoder_dir: Path | None,
        model: str = "F5TTS_v1_Base",
        device: str = "auto",
    ) -> None:
        super().__init__(
            model_id=f"{model}:{Path(checkpoint).name if checkpoint else ''}",
            device=device,
            paths={
                "F5-TTS checkpoint": checkpoint,
                "F5-TTS vocabulary file": vocab_file,
                "vocos vocoder folder": vocoder_dir,
            },
        )
        self._model_name, self._checkpoint, self._vocab, self._vocoder = model, checkpoint, vocab_file, vocoder_dir

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

    def prepare_voice(self, *, references, similarity=None, cancel=None) -> VoiceProfile:
        profile = super().prepare_voice(references=references, similarity=similarity, cancel=cancel)
        if not profile.parameters["transcript"]:
            raise ReferenceInvalid("f5-tts needs the transcript of the reference clip")
        return profile

    def _generate(self, *, text, reference_path, voice, controls):
        if controls.pitch_semitones != 0.0:
            raise ControlUnsupported("f5-tts has no pitch control")
        transcript = voice.parameters.get("transcript")
        if not isinstance(transcript, str) or not transcript:
            raise VoiceProfileInvalid("f5-tts voice profile has no reference transcript")
        wav, rate, _ = self._model.infer(
            ref_file=reference_path, ref_text=transcript, gen_text=text, speed=controls.speed, show_info=lambda *_: None
        )
        return wav, rate


class ChatterboxEngine(_InProcessEngine):
    name = "chatterbox"
    package = "chatterbox-tts"
    module = "chatterbox"
    languages = frozenset({"en"})

    def __init__(
        self, *, checkpoint_dir: Path | None, device: str = "auto", exaggeration: float = 0.5, cfg_weight: float = 0.5
    ) -> None:
        super().__init__(
            model_id=f"chatterbox:{Path(checkpoint_dir).name if checkpoint_dir else ''}",
            device=device,
            paths={"Chatterbox checkpoint folder": checkpoint_dir},
        )
        self._dir = checkpoint_dir
        self._exaggeration, self._cfg_weight = exaggeration, cfg_weight

    def load(self) -> None:
        with self._lock:
            if self._model is None:
                from chatterbox.tts import ChatterboxTTS

                self._model = ChatterboxTTS.from_local(str(self._dir), self._device)

    def _generate(self, *, text, reference_path, voice, controls):
        if not controls.is_default:
            raise ControlUnsupported("chatterbox has no speed or pitch control")
        wav = self._model.generate(
            text, audio_prompt_path=reference_path, exaggeration=self._exaggeration, cfg_weight=self._cfg_weight
        )
        return wav.detach().cpu().numpy(), self._model.sr
