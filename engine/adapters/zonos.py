"""Zyphra Zonos through the REST API of its Gradio app (``gradio_interface.py``).

Gradio's documented flow: upload the reference (``POST {api}/upload``, multipart ``files``),
start ``generate_audio`` (``POST {api}/call/generate_audio`` with ``{"data": [...]}`` in the
order of the app's inputs) which returns an ``event_id``, read the result as server-sent events
(``GET {api}/call/generate_audio/{event_id}``), then fetch the produced file (``{api}/file=``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

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
from engine.errors import ControlUnsupported, EngineRequestFailed
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

NAME = "zonos"
# Our two-letter codes -> Zonos' espeak language codes.
LANGUAGE_CODES = {
    "en": "en-us",
    "de": "de",
    "fr": "fr-fr",
    "es": "es",
    "it": "it",
    "ja": "ja",
    "zh": "cmn",
    "pt": "pt-br",
    "nl": "nl",
    "pl": "pl",
    "ru": "ru",
    "ko": "ko",
}
DEFAULT_SPEAKING_RATE = 15.0  # the app's default, phonemes per second
MAX_REFERENCE_S = 30.0
AUDIO_TYPES = ("audio/wav", "audio/x-wav", "audio/wave")
# Emotion sliders at the app's defaults; "emotion" is left unconditional as the app does.
EMOTIONS = [1.0, 0.05, 0.05, 0.05, 0.05, 0.05, 0.1, 0.2]


class ZonosEngine(CloningEngine):
    name = NAME

    def __init__(
        self,
        *,
        base_url: str,
        model_choice: str = "Zyphra/Zonos-v0.1-transformer",
        api_prefix: str = "/gradio_api",
        timeout_s: float = 180.0,
        seed: int = 420,
    ) -> None:
        self._base_url = base_url
        self._client = http_client(base_url, timeout_s=timeout_s)
        self._api = "/" + api_prefix.strip("/") if api_prefix.strip("/") else ""
        self._model = model_choice
        self._seed = seed

    def describe(self) -> EngineDescription:
        return EngineDescription(
            name=NAME, version="gradio generate_audio", model_id=self._model, device=f"remote {self._base_url}"
        )

    def supported_languages(self) -> frozenset[str]:
        return frozenset(LANGUAGE_CODES)

    def load(self) -> None:
        with http_errors(NAME):
            self._client.get(f"{self._api}/info")

    def prepare_voice(
        self,
        *,
        references: Sequence[ReferenceClip],
        similarity: SpeakerSimilarity | None = None,
        cancel: CancelToken | None = None,
    ) -> VoiceProfile:
        # Zonos embeds the speaker on every call, so the profile keeps the (trimmed) reference.
        clip, audio = pick_reference(references, max_s=MAX_REFERENCE_S)
        return VoiceProfile(
            engine=NAME,
            model_id=self._model,
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
        text = check_text(text)
        language = check_language(language, supported=LANGUAGE_CODES)
        self.check_voice(voice)
        if controls.pitch_semitones != 0.0:
            raise ControlUnsupported(f"{NAME} has no pitch shift (only pitch variation)")
        reference = wav_from_profile(voice.parameters)
        with http_errors(NAME):
            uploaded = self._upload(reference)
            data = [
                self._model,
                text,
                LANGUAGE_CODES[language],
                {"path": uploaded, "meta": {"_type": "gradio.FileData"}},
                None,  # prefix audio
                *EMOTIONS,
                0.78,  # vq score
                24000,  # fmax
                45.0,  # pitch std
                DEFAULT_SPEAKING_RATE * controls.speed,
                4.0,  # dnsmos
                False,  # denoise speaker
                2.0,  # cfg scale
                0,
                0,
                0,  # top p, top k, min p
                0.5,
                0.40,
                0.0,  # unified sampler: linear, confidence, quadratic
                self._seed,
                False,  # fixed seed, do not randomise
                ["emotion"],
            ]
            if cancel is not None:
                cancel.raise_if_cancelled()
            response = self._client.post(f"{self._api}/call/generate_audio", json={"data": data})
            raise_for_answer(NAME, response, expect=("application/json",))
            event_id = _field(response, "event_id")
            result = self._await_result(event_id, cancel)
            audio_bytes = self._fetch(result)
        audio, rate = decode_wav(audio_bytes, engine=NAME)
        return EngineAudio(samples=audio, sample_rate=rate)

    def _upload(self, wav: bytes) -> str:
        response = self._client.post(f"{self._api}/upload", files={"files": ("reference.wav", wav, "audio/wav")})
        raise_for_answer(NAME, response, expect=("application/json",))
        paths = response.json()
        if not isinstance(paths, list) or not paths or not isinstance(paths[0], str):
            raise EngineRequestFailed(f"{NAME} upload answer is malformed")
        return paths[0]

    def _await_result(self, event_id: str, cancel: CancelToken | None) -> dict:
        with self._client.stream("GET", f"{self._api}/call/generate_audio/{event_id}") as response:
            if response.status_code >= 400:
                response.read()
            raise_for_answer(NAME, response, expect=("text/event-stream",))
            event = None
            for line in response.iter_lines():
                if cancel is not None:
                    cancel.raise_if_cancelled()
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:") and event in ("complete", "error"):
                    payload = line[5:].strip()
                    if event == "error":
                        raise EngineRequestFailed(f"{NAME} generation failed: {payload[:200]}")
                    try:
                        outputs = json.loads(payload)
                        audio = outputs[0]
                        if not isinstance(audio, dict) or not isinstance(audio.get("path"), str):
                            raise TypeError("no audio file in the result")
                    except (ValueError, TypeError, IndexError, KeyError) as exc:
                        raise EngineRequestFailed(f"{NAME} result is malformed: {exc}") from exc
                    return audio
        raise EngineRequestFailed(f"{NAME} event stream ended without a result")

    def _fetch(self, result: dict) -> bytes:
        # Fetched by path from the configured server only; the result's own "url" may name any
        # host, and following it would let the engine point clonegate at another machine.
        with self._client.stream("GET", f"{self._api}/file={result['path']}") as response:
            if response.status_code >= 400:
                response.read()
            raise_for_answer(NAME, response, expect=AUDIO_TYPES)
            return read_limited(response, engine=NAME)


def _field(response, key: str) -> str:
    try:
        value = response.json()[key]
    except (ValueError, KeyError, TypeError) as exc:
        raise EngineRequestFailed(f"{NAME} answer has no {key}") from exc
    if not isinstance(value, str) or not value.isascii() or "/" in value:
        raise EngineRequestFailed(f"{NAME} answer has a malformed {key}")
    return value
