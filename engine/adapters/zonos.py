"""Zyphra Zonos through the REST API of its Gradio app (``gradio_interface.py``).

Gradio's documented flow: upload the reference (``POST {api}/upload``, multipart ``files``),
start ``generate_audio`` (``POST {api}/call/generate_audio`` with ``{"data": [...]}`` in the
order of the app's inputs) which returns an ``event_id``, read the result as server-sent events
(``GET {api}/call/generate_audio/{event_id}``), then fetch the produced file (``{api}/file=``).

What Gradio 5.x really does, and the adapter expects: a failed generation is a 200 event stream
ending in ``event: error`` with ``data: null`` (the app does not show error text); the output
file is served as ``application/octet-stream`` with ``attachment``, because ``audio/x-wav`` is
not on Gradio's XSS-safe list, so the bytes are checked as WAV instead of trusting the header.
The app stops generating at 30 s (``max_new_tokens = 86 * 30``): text goes in sentence pieces
far below that, and a piece that reaches the cap is refused as cut off.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

from engine.adapters.capped import OutputCap, joined
from engine.adapters.common import (
    WAV_TYPES,
    decode_wav,
    http_client,
    http_errors,
    json_object,
    pick_reference,
    raise_for_answer,
    read_limited,
    wav_from_profile,
    wav_to_text,
)
from engine.checks import check_language, check_text, references_sha256
from engine.errors import ControlUnsupported, EngineRequestFailed, EngineUnavailable
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
# generate_audio's inputs as Gradio's /info lists them; the request is positional, so a changed
# interface must be refused at start-up rather than fed shifted values.
GENERATE_AUDIO_COMPONENTS = (
    ["Dropdown", "Textbox", "Dropdown", "Audio", "Audio"]
    + ["Slider"] * 13
    + ["Checkbox"]
    + ["Slider"] * 7
    + ["Number", "Checkbox", "Checkboxgroup"]
)
DEFAULT_SPEAKING_RATE = 15.0  # the app's default, phonemes per second
MAX_REFERENCE_S = 30.0
# Gradio serves the output .wav as octet-stream; its bytes must then decode as WAV.
FILE_TYPES = (*WAV_TYPES, "application/octet-stream")
# The app's generation cap, and pieces of about 10 s of speech at the default rate.
OUTPUT_CAP = OutputCap(engine=NAME, max_output_s=30.0, piece_chars=150)
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
        self._languages = frozenset(LANGUAGE_CODES)

    def describe(self) -> EngineDescription:
        return EngineDescription(
            name=NAME, version="gradio generate_audio", model_id=self._model, device=f"remote {self._base_url}"
        )

    def supported_languages(self) -> frozenset[str]:
        return self._languages

    def load(self) -> None:
        """Check that the server is Zonos's app: a ``generate_audio`` endpoint with the app's inputs
        in the app's order, an audio output, and the configured model among its choices."""
        with http_errors(NAME):
            response = self._client.get(f"{self._api}/info")
        info = json_object(response, engine=NAME, what="Gradio's /info")
        endpoint = (info.get("named_endpoints") or {}).get("/generate_audio")
        if not isinstance(endpoint, dict):
            raise EngineUnavailable(f"{self._base_url} has no Gradio endpoint /generate_audio: not a Zonos app")
        parameters = endpoint.get("parameters") or []
        components = [p.get("component") for p in parameters if isinstance(p, dict)]
        returns = [r.get("component") for r in endpoint.get("returns") or [] if isinstance(r, dict)]
        if components != GENERATE_AUDIO_COMPONENTS or returns[:1] != ["Audio"]:
            raise EngineUnavailable(
                f"{NAME} /generate_audio takes {components} and returns {returns}, not the Zonos app's "
                f"{len(GENERATE_AUDIO_COMPONENTS)} inputs and audio output"
            )
        models = _choices(parameters[0])
        if models is not None and self._model not in models:
            raise EngineUnavailable(f"{NAME} app does not offer model {self._model!r}; it offers {sorted(models)}")
        codes = _choices(parameters[2])
        if codes is not None:
            self._languages = frozenset(ours for ours, theirs in LANGUAGE_CODES.items() if theirs in codes)

    def prepare_voice(
        self,
        *,
        references: Sequence[ReferenceClip],
        similarity: SpeakerSimilarity | None = None,
        cancel: CancelToken | None = None,
    ) -> VoiceProfile:
        # Zonos embeds the speaker on every call, so the profile keeps the (trimmed) reference.
        clip, audio = pick_reference(references, engine=NAME, max_s=MAX_REFERENCE_S)
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
        language = check_language(language, supported=self._languages)
        self.check_voice(voice)
        if controls.pitch_semitones != 0.0:
            raise ControlUnsupported(f"{NAME} has no pitch shift (only pitch variation)")
        reference = wav_from_profile(voice.parameters)
        pieces = OUTPUT_CAP.pieces(text, speed=controls.speed)
        with http_errors(NAME):
            uploaded = self._upload(reference)  # once: the app caches the speaker embedding by path
            for piece in pieces:
                if cancel is not None:
                    cancel.raise_if_cancelled()
                audio_bytes = self._generate(
                    piece, language=language, speaker=uploaded, speed=controls.speed, cancel=cancel
                )
                audio, rate = decode_wav(audio_bytes, engine=NAME)
                yield OUTPUT_CAP.check(EngineAudio(samples=audio, sample_rate=rate))

    def _generate(self, text: str, *, language: str, speaker: str, speed: float, cancel: CancelToken | None) -> bytes:
        data = [
            self._model,
            text,
            LANGUAGE_CODES[language],
            {"path": speaker, "meta": {"_type": "gradio.FileData"}},
            None,  # prefix audio
            *EMOTIONS,
            0.78,  # vq score
            24000,  # fmax
            45.0,  # pitch std
            DEFAULT_SPEAKING_RATE * speed,
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
        response = self._client.post(f"{self._api}/call/generate_audio", json={"data": data})
        raise_for_answer(NAME, response, expect=("application/json",))
        event_id = _field(response, "event_id")
        return self._fetch(self._await_result(event_id, cancel))

    def _upload(self, wav: bytes) -> str:
        response = self._client.post(f"{self._api}/upload", files={"files": ("reference.wav", wav, "audio/wav")})
        raise_for_answer(NAME, response, expect=("application/json",))
        paths = response.json()
        if not isinstance(paths, list) or not paths or not isinstance(paths[0], str):
            raise EngineRequestFailed(f"{NAME} upload answer is malformed")
        return paths[0]

    def _await_result(self, event_id: str, cancel: CancelToken | None) -> dict[str, Any]:
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
                        raise EngineRequestFailed(f"{NAME} generation failed: {_error_text(payload)}")
                    return _output_file(payload)
        raise EngineRequestFailed(f"{NAME} event stream ended without a result")

    def _fetch(self, result: dict[str, Any]) -> bytes:
        # Fetched by path from the configured server only; the result's own "url" may name any
        # host, and following it would let the engine point clonegate at another machine.
        with self._client.stream("GET", f"{self._api}/file={result['path']}") as response:
            if response.status_code >= 400:
                response.read()
            raise_for_answer(NAME, response, expect=FILE_TYPES)
            return read_limited(response, engine=NAME)


def _choices(parameter: object) -> frozenset[str] | None:
    """A Dropdown's choices from Gradio's /info (``type.enum``), when it lists them."""
    if not isinstance(parameter, dict):
        return None
    kind = parameter.get("type")
    enum = kind.get("enum") if isinstance(kind, dict) else None
    return frozenset(str(value) for value in enum) if isinstance(enum, list) else None


def _error_text(payload: str) -> str:
    try:
        message = json.loads(payload) if payload else None
    except ValueError:
        message = payload
    if message is None:
        return "the app reported an error without a message (Gradio hides it unless the app shows errors)"
    return str(message)[:200]


def _output_file(payload: str) -> dict[str, Any]:
    try:
        outputs = json.loads(payload)
        audio = outputs[0]
    except (ValueError, TypeError, IndexError, KeyError) as exc:
        raise EngineRequestFailed(f"{NAME} result is malformed: {exc}") from exc
    if not isinstance(audio, dict) or not isinstance(audio.get("path"), str):
        raise EngineRequestFailed(f"{NAME} result has no audio file")
    return audio


def _field(response: Any, key: str) -> str:
    try:
        value = response.json()[key]
    except (ValueError, KeyError, TypeError) as exc:
        raise EngineRequestFailed(f"{NAME} answer has no {key}") from exc
    if not isinstance(value, str) or not value.isascii() or "/" in value:
        raise EngineRequestFailed(f"{NAME} answer has a malformed {key}")
    return value
