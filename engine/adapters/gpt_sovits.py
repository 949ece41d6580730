"""GPT-SoVITS through its ``api_v2.py`` HTTP server.

The server reads the reference from a file path on its own host (``ref_audio_path``), so the
reference is staged into a folder both hosts share: clonegate writes ``<sha256>.wav`` under
``shared_dir``; the engine sees the same folder as ``engine_shared_dir``.

What upstream really does, and the adapter answers:
- an inference failure is answered with 200 and one second of 16 kHz zeros (``TTS.run`` yields
  that before re-raising, ``api_v2`` sends the first item): any all-zero or 16 kHz answer is an
  engine failure, never audio;
- references outside 3–10 s are refused (``_set_prompt_semantic``), so a clip with a transcript
  is never trimmed: the transcript would no longer match it;
- v3 and v4 weights refuse an empty prompt text, and v1 weights speak only zh, en and ja: the
  version is read from the server at ``load()`` (the 400 answer to an unknown ``text_lang``
  names it), which also proves the service is api_v2.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from engine.adapters.common import (
    WAV_TYPES,
    decode_wav,
    error_detail,
    http_client,
    http_errors,
    pick_reference,
    raise_for_answer,
    read_limited,
    wav_from_profile,
    wav_to_text,
)
from engine.checks import check_language, check_text, references_sha256
from engine.errors import (
    ControlUnsupported,
    EngineRequestFailed,
    EngineUnavailable,
    LanguageUnsupported,
    ReferenceInvalid,
    VoiceProfileInvalid,
)
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
VERSIONS = ("v1", "v2", "v2Pro", "v2ProPlus", "v3", "v4")
V1_LANGUAGES = frozenset({"zh", "en", "ja"})
LANGUAGES = frozenset({"zh", "en", "ja", "ko", "yue"})
# v3 and v4 decode with a vocoder and need the reference's transcript (NO_PROMPT_ERROR upstream).
PROMPT_TEXT_VERSIONS = frozenset({"v3", "v4"})
MIN_REFERENCE_S, MAX_REFERENCE_S = 3.0, 10.0
# The rate of upstream's failure answer; GPT-SoVITS itself speaks at 32, 24 or 48 kHz.
FAILURE_RATE = 16000
PROBE_LANGUAGE = "clonegate-probe"
_VERSION_ANSWER = re.compile(r"text_lang: \S+ is not supported in version (\S+)")
_LANGUAGE_REFUSAL = re.compile(r"(text|prompt)_lang: \S+ is not supported")


class GptSovitsEngine(CloningEngine):
    name = NAME

    def __init__(
        self,
        *,
        base_url: str,
        shared_dir: Path | str,
        engine_shared_dir: str | None = None,
        model_id: str = "gpt-sovits",
        timeout_s: float = 120.0,
        default_prompt_language: str = "en",
        model_version: str | None = None,
    ) -> None:
        self._shared_dir = Path(shared_dir)
        if not self._shared_dir.is_dir():
            raise EngineUnavailable(f"{NAME} shared reference folder {shared_dir} does not exist")
        if model_version is not None and model_version not in VERSIONS:
            raise EngineUnavailable(f"{NAME} model version must be one of {VERSIONS}, not {model_version!r}")
        self._engine_dir = (engine_shared_dir or str(self._shared_dir)).rstrip("/")
        self._base_url = base_url
        self._client = http_client(base_url, timeout_s=timeout_s)
        self._model_id = model_id
        self._default_prompt_language = default_prompt_language
        self._version = model_version  # None until load() has asked the server

    def describe(self) -> EngineDescription:
        return EngineDescription(
            name=NAME,
            version=f"api_v2 {self._version or 'unknown'}",
            model_id=self._model_id,
            device=f"remote {self._base_url}",
        )

    def supported_languages(self) -> frozenset[str]:
        return V1_LANGUAGES if self._version == "v1" else LANGUAGES

    @property
    def needs_prompt_text(self) -> bool:
        return self._version in PROMPT_TEXT_VERSIONS

    def load(self) -> None:
        """Ask the server which weights' version it runs; only api_v2 answers this way."""
        probe = {"text": "probe", "text_lang": PROBE_LANGUAGE, "ref_audio_path": "probe.wav", "prompt_lang": "en"}
        with http_errors(NAME):
            response = self._client.get("/tts", params=probe)
        match = _VERSION_ANSWER.search(error_detail(response)) if response.status_code == 400 else None
        if match is None:
            raise EngineUnavailable(
                f"{self._base_url} is not a GPT-SoVITS api_v2 server: it answered the version probe with "
                f"{response.status_code} {error_detail(response)[:120]!r}"
            )
        version = match.group(1)
        if version not in VERSIONS:
            raise EngineUnavailable(f"{NAME} server runs weights of unknown version {version!r}")
        if self._version is not None and version != self._version:
            raise EngineUnavailable(f"{NAME} server runs {version} weights, configured for {self._version}")
        self._version = version

    def prepare_voice(
        self,
        *,
        references: Sequence[ReferenceClip],
        similarity: SpeakerSimilarity | None = None,
        cancel: CancelToken | None = None,
    ) -> VoiceProfile:
        clip, audio = pick_reference(
            references,
            engine=NAME,
            max_s=MAX_REFERENCE_S,
            min_s=MIN_REFERENCE_S,
            uses_transcript=True,
            needs_transcript=self.needs_prompt_text,
        )
        prompt_language = check_language(
            clip.language or self._default_prompt_language, supported=self.supported_languages()
        )
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
        language = check_language(language, supported=self.supported_languages())
        self.check_voice(voice)
        if controls.pitch_semitones != 0.0:
            raise ControlUnsupported(f"{NAME} has no pitch control")
        prompt_lang, prompt_text = voice.parameters.get("prompt_lang"), voice.parameters.get("prompt_text")
        if prompt_lang not in LANGUAGES or not isinstance(prompt_text, str):
            raise VoiceProfileInvalid(f"{NAME} voice profile has no prompt language or text")
        if self.needs_prompt_text and not prompt_text:
            raise VoiceProfileInvalid(f"{NAME} {self._version} weights need the reference's transcript")
        if prompt_lang not in self.supported_languages():
            raise VoiceProfileInvalid(f"{NAME} {self._version} weights cannot read a {prompt_lang} transcript")
        body = {
            "text": text,
            "text_lang": language,
            "ref_audio_path": self._stage(voice),
            "prompt_text": prompt_text,
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
                detail = error_detail(response)
                if response.status_code == 400 and _LANGUAGE_REFUSAL.search(detail):
                    raise LanguageUnsupported(f"{NAME}: {detail}")
                if "3~10" in detail:  # upstream's refusal of a reference outside 3–10 s
                    raise ReferenceInvalid(f"{NAME} refused the reference: {detail}")
            raise_for_answer(NAME, response, expect=WAV_TYPES)
            data = read_limited(response, engine=NAME)
        audio, rate = decode_wav(data, engine=NAME)
        if rate == FAILURE_RATE or not np.any(audio):
            raise EngineRequestFailed(
                f"{NAME} inference failed: it answered with {audio.size / rate:.2f} s of silence at {rate} Hz, "
                "its stand-in for an error (see the engine's log)"
            )
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
