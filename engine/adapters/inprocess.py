"""The shared base of engines that run as Python packages inside an engine worker (F5-TTS,
Chatterbox), from local checkpoints.

Their packages pin a torch, numpy and transformers of their own (Chatterbox 0.1.7: torch 2.6,
numpy < 2), so they are never installed beside the gateway: each runs in its own worker
environment (docs/engines.md, Ray Serve workers). Construction checks that the package is
importable and every checkpoint path exists, so a misconfigured worker fails at start-up with
one message naming everything missing; ``load()`` then reads the weights. Nothing here
downloads.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from engine.adapters.common import require_installed, torch_device, wav_from_profile
from engine.checks import check_language, check_text
from engine.errors import EngineOutputInvalid
from engine.interface import (
    CancelToken,
    CloningEngine,
    EngineAudio,
    EngineDescription,
    SynthesisControls,
    VoiceProfile,
)


class InProcessEngine(CloningEngine):
    package = ""
    module = ""
    languages: frozenset[str] = frozenset()

    def __init__(self, *, model_id: str, device: str, paths: Mapping[str, Path | None]) -> None:
        require_installed(engine=self.name, package=self.package, module=self.module, paths=paths)
        self._device = torch_device(device)
        self._model_id = model_id
        self._model: Any = None
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
        self._check_controls(controls)
        return self.generate_piece(text=text, voice=voice, controls=controls, cancel=cancel)

    def generate_piece(
        self, *, text: str, voice: VoiceProfile, controls: SynthesisControls, cancel: CancelToken | None
    ) -> EngineAudio:
        """One call into the package for already checked text, voice and controls."""
        reference = wav_from_profile(voice.parameters)
        self.load()
        if cancel is not None:
            cancel.raise_if_cancelled()
        with self._reference_file(reference) as path, self._lock:
            samples, rate = self._generate(
                text=text, reference=reference, reference_path=path, voice=voice, controls=controls
            )
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        if samples.size == 0:
            raise EngineOutputInvalid(f"{self.name} returned no audio")
        return EngineAudio(samples=samples, sample_rate=int(rate))

    @staticmethod
    def _reference_file(data: bytes) -> _TemporaryReference:
        return _TemporaryReference(data)

    def _check_controls(self, controls: SynthesisControls) -> None:
        """Raise ``ControlUnsupported`` for a control the package cannot honour."""

    def _generate(
        self, *, text: str, reference: bytes, reference_path: str, voice: VoiceProfile, controls: SynthesisControls
    ) -> tuple[np.ndarray, int]:
        raise NotImplementedError


class _TemporaryReference:
    """The packages take a reference *file*: a private temporary file, removed right after."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._path = ""

    def __enter__(self) -> str:
        handle, self._path = tempfile.mkstemp(suffix=".wav")
        with os.fdopen(handle, "wb") as out:
            out.write(self._data)
        return self._path

    def __exit__(self, *_: object) -> None:
        os.unlink(self._path)
