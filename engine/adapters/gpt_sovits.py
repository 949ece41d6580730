"""GPT-SoVITS through its ``api_v2.py`` HTTP server.

The server reads the reference from a file path on its own host (``ref_audio_path``), so the
reference is staged into a folder both hosts share: clonegate writes ``<sha256>.wav`` under
``shared_dir``; the engine sees the same folder as ``engine_shared_dir``.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from engine.adapters.common import (
    decode_wav,
    http_client,
    http_errors,
    pick_reference,
    raise_for_answer,
    read_limited,
    wav_from_profile,
    wav_to_text,
)
from engine.checks import check_language, check_text, references_sha256
from engine.errors import ControlUnsupported, EngineUnavailable, ReferenceInvalid, VoiceProfileInvalid
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

NAME = "gpt-sovits"
LANGUAGES = frozenset({"zh", "en", "ja", "ko", "yue"})
# api_v2 refuses references outside 3–10 s.
MIN_REFERENCE_S, MAX_REFERENCE_S = 3.0, 10.0
AUDIO_TYPES = ("audio/wav", "audio/x-wav", "audio/wave")


class GptSovitsEngine(CloningEngine):
    name = NAME

    def __init__(
        self,
        *,
        base_url: str,
        shared_dir: Path,
        engine_shared_dir: str | None = None,
        model_id: str = "gpt-sovits",
        timeout_s: float = 120.0,
        default_prompt_language: str = "en",
    ) -> None:
        self._shared_dir = Path(shared_dir)
        if not self._shared_dir.is_dir():
            raise EngineUnavailable(f"{NAME} shared reference folder {shared_dir} does not exist")
        self._engine_dir = (engine_shared_dir or str(self._shared_dir)).rstrip("/")
        self._base_url = base_url
        self._client = http_client(base_url, timeout_s=timeout_s)
        self._model_id = model_id
        self._default_prompt_language = default_prompt_language

    def describe(self) -> EngineDescription:
        return EngineDescription(
            name=NAME, version="api_v2", model_id=self._model_id, device=f"remote {self._base_url}"
        )

    def supported_languages(self) -> frozenset[str]:
        return LANGUAGES

    def load(self) -> None:
        # Reachability only: any HTTP answer (api_v2 answers 400 to a bare /tts) means it is up.
        with http_errors(NAME):
            self._client.get("/tts")

    def prepare_voice(
        self,
        *,
        references: Sequence[ReferenceClip],
        similarity: SpeakerSimilarity | None = None,
        cancel: CancelToken | None = None,
    ) -> VoiceProfile:
        clip, audio = pick_reference(references, max_s=MAX_REFERENCE_S)
        if audio.size / clip.sample_rate < MIN_REFERENCE_S:
            raise ReferenceInvalid(f"{NAME} needs a reference of at least {MIN_REFERENCE_S:.0f} s")
        prompt_language = check_language(clip.language or self._default_prompt_language, supported=LANGUAGES)
        profile = VoiceProfile(
            engine=NAME,
            model_id=self._model_id,
            parameters={
                "reference_wav": wav_to_text(audio, clip.sample_rate),
                "prompt_text": (clip.transcript or "").strip(),
                "prompt_lang": prompt_language,
            },
            reference_sha256=references_sha256(references),
        )
        self._stage(profile)
        return profile

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
        language = check_language(language, supported=LANGUAGES)
        self.check_voice(voice)
        if controls.pitch_semitones != 0.0:
            raise ControlUnsupported(f"{NAME} has no pitch control")
        prompt_lang = voice.parameters.get("prompt_lang")
        if prompt_lang not in LANGUAGES or not isinstance(voice.parameters.get("prompt_text"), str):
            raise VoiceProfileInvalid(f"{NAME} voice profile has no prompt language or text")
        body = {
            "text": text,
            "text_lang": language,
            "ref_audio_path": self._stage(voice),
            "prompt_text": voice.parameters["prompt_text"],
            "prompt_lang": prompt_lang,
            "text_split_method": "cut5",
            "batch_size": 1,
            "speed_factor": controls.speed,
            "media_type": "wav",
            "streaming_mode": False,
        }
        if cancel is not None:
            cancel.raise_if_cancelled()
        with http_errors(NAME), self._client.stream("POST", "/tts", json=body) as response:
            if response.status_code >= 400:
                response.read()
            raise_for_answer(NAME, response, expect=AUDIO_TYPES)
            data = read_limited(response, engine=NAME)
        audio, rate = decode_wav(data, engine=NAME)
        return EngineAudio(samples=audio, sample_rate=rate)

    def _stage(self, voice: VoiceProfile) -> str:
        """Write the reference into the shared folder (once, by content hash); return the engine's path."""
        data = wav_from_profile(voice.parameters)
        name = hashlib.sha256(data).hexdigest() + ".wav"
        target = self._shared_dir / name
        if not target.exists():
            # Write then rename, so the engine never reads a half-written file.
            handle, temporary = tempfile.mkstemp(dir=self._shared_dir, suffix=".part")
            with os.fdopen(handle, "wb") as out:
                out.write(data)
            os.replace(temporary, target)
        return f"{self._engine_dir}/{name}"
