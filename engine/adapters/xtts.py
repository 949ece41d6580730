"""Coqui XTTS v2 through the xtts-streaming-server HTTP API.

``/clone_speaker`` takes the reference (multipart field ``wav_file``) and returns the speaker's
conditioning latents; they are stored in the profile, so the reference is sent once. ``/tts_stream``
takes the latents and text and streams a WAV header (length 0) followed by raw 16-bit PCM.

What upstream really does, and the adapter answers: ``language`` is a free string and a wrong
one fails inside the stream, after a 200, so languages are checked here against the server's
own ``/languages`` (Chinese is ``zh-cn`` there); the server splits long text itself; it runs one
model, so this adapter sends it one request at a time and waits (cancellably) for its turn.
"""

from __future__ import annotations

import base64
import struct
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from engine.adapters.common import (
    MAX_RESPONSE_BYTES,
    encode_wav,
    http_client,
    http_errors,
    json_object,
    pick_reference,
    raise_for_answer,
)
from engine.checks import check_language, check_text, references_sha256
from engine.errors import ControlUnsupported, EngineRequestFailed, EngineUnavailable, VoiceProfileInvalid
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

NAME = "xtts"
SERVER_TITLE = "XTTS Streaming server"
# Our two-letter codes -> the model config's language codes (only Chinese differs).
LANGUAGE_CODES = {
    code: code
    for code in ("en", "de", "fr", "es", "it", "pl", "pt", "tr", "ru", "nl", "cs", "ar", "ja", "hu", "ko", "hi")
} | {"zh": "zh-cn"}
SAMPLE_RATE = 24000  # xtts-streaming-server always streams 24 kHz mono 16-bit
SPEAKER_EMBEDDING_DIM = 512
LATENT_DIM = 1024
MAX_REFERENCE_S = 30.0
TURN_POLL_S = 0.1


def _pack(values: np.ndarray) -> str:
    # The server sends half precision; storing float16 keeps the latents exact and the profile small.
    return base64.b64encode(values.astype("<f2").tobytes()).decode("ascii")


def _unpack(text: str, *, shape: tuple[int, int]) -> list[list[float]]:
    values = np.frombuffer(base64.b64decode(text, validate=True), dtype="<f2").astype(np.float64)
    if values.size != shape[0] * shape[1] or not np.all(np.isfinite(values)):
        raise ValueError("latent size or values are wrong")
    rows: list[list[float]] = values.reshape(shape).tolist()
    return rows


class XttsEngine(CloningEngine):
    name = NAME

    def __init__(
        self, *, base_url: str, model_id: str = "xtts_v2", timeout_s: float = 120.0, stream_chunk_size: int = 20
    ) -> None:
        self._base_url = base_url
        self._client = http_client(base_url, timeout_s=timeout_s)
        self._model_id = model_id
        self._chunk = stream_chunk_size
        self._languages = frozenset(LANGUAGE_CODES)
        self._turn = threading.Lock()  # the server runs one model: one request at a time

    def describe(self) -> EngineDescription:
        return EngineDescription(
            name=NAME, version="xtts-streaming-server", model_id=self._model_id, device=f"remote {self._base_url}"
        )

    def supported_languages(self) -> frozenset[str]:
        return self._languages

    def load(self) -> None:
        """Check that the server is xtts-streaming-server and learn the model's languages."""
        with http_errors(NAME):
            response = self._client.get("/openapi.json")
        spec = json_object(response, engine=NAME, what="the OpenAPI document")
        title = (spec.get("info") or {}).get("title")
        paths = spec.get("paths") or {}
        if title != SERVER_TITLE or not {"/clone_speaker", "/tts_stream", "/languages"} <= set(paths):
            raise EngineUnavailable(f"{self._base_url} is not xtts-streaming-server (OpenAPI title {title!r})")
        with http_errors(NAME):
            response = self._client.get("/languages")
        raise_for_answer(NAME, response, expect=("application/json",))
        codes = response.json()
        if not isinstance(codes, list) or not codes or not all(isinstance(code, str) for code in codes):
            raise EngineUnavailable(f"{NAME} /languages answered {str(codes)[:80]!r}, not a list of codes")
        self._languages = frozenset(ours for ours, theirs in LANGUAGE_CODES.items() if theirs in codes)

    def prepare_voice(
        self,
        *,
        references: Sequence[ReferenceClip],
        similarity: SpeakerSimilarity | None = None,
        cancel: CancelToken | None = None,
    ) -> VoiceProfile:
        clip, audio = pick_reference(references, engine=NAME, max_s=MAX_REFERENCE_S)
        files = {"wav_file": ("reference.wav", encode_wav(audio, clip.sample_rate), "audio/wav")}
        with self._wait_turn(cancel), http_errors(NAME):
            response = self._client.post("/clone_speaker", files=files)
        raise_for_answer(NAME, response, expect=("application/json",))
        try:
            body = response.json()
            embedding = np.asarray(body["speaker_embedding"], dtype=np.float64).reshape(-1)
            latent = np.asarray(body["gpt_cond_latent"], dtype=np.float64)
        except (ValueError, KeyError, TypeError) as exc:
            raise EngineRequestFailed(f"{NAME} /clone_speaker answer is malformed: {exc}") from exc
        if (
            embedding.size != SPEAKER_EMBEDDING_DIM
            or latent.ndim != 2
            or latent.shape[1] != LATENT_DIM
            or not np.all(np.isfinite(embedding))
            or not np.all(np.isfinite(latent))
        ):
            raise EngineRequestFailed(f"{NAME} /clone_speaker returned latents of unexpected shape")
        return VoiceProfile(
            engine=NAME,
            model_id=self._model_id,
            parameters={
                "speaker_embedding": _pack(embedding),
                "gpt_cond_latent": _pack(latent),
                "latent_frames": int(latent.shape[0]),
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
        language = check_language(language, supported=self._languages)
        self.check_voice(voice)
        if not controls.is_default:
            raise ControlUnsupported(f"{NAME} streaming server has no speed or pitch control")
        try:
            frames = int(voice.parameters["latent_frames"])
            body: dict[str, Any] = {
                "speaker_embedding": _unpack(voice.parameters["speaker_embedding"], shape=(1, SPEAKER_EMBEDDING_DIM))[
                    0
                ],
                "gpt_cond_latent": _unpack(voice.parameters["gpt_cond_latent"], shape=(frames, LATENT_DIM)),
                "text": text,
                "language": LANGUAGE_CODES[language],
                "add_wav_header": True,
                "stream_chunk_size": str(self._chunk),
            }
        except (KeyError, TypeError, ValueError) as exc:
            raise VoiceProfileInvalid(f"{NAME} voice profile latents are malformed: {exc}") from exc
        received = bytearray()
        with (
            self._wait_turn(cancel),
            http_errors(NAME),
            self._client.stream("POST", "/tts_stream", json=body) as response,
        ):
            if response.status_code >= 400:
                response.read()
            raise_for_answer(NAME, response, expect=("audio/wav", "audio/x-wav"))
            for chunk in response.iter_bytes():
                # Checked per chunk: closing the stream stops generation on the server too.
                if cancel is not None:
                    cancel.raise_if_cancelled()
                received += chunk
                if len(received) > MAX_RESPONSE_BYTES:
                    raise EngineRequestFailed(f"{NAME} sent more than {MAX_RESPONSE_BYTES} bytes")
        return EngineAudio(samples=_pcm_after_header(bytes(received)), sample_rate=SAMPLE_RATE)

    def _wait_turn(self, cancel: CancelToken | None) -> _Turn:
        return _Turn(self._turn, cancel)


class _Turn:
    """Holds the adapter's one request slot; waiting for it stops when the request is cancelled."""

    def __init__(self, lock: threading.Lock, cancel: CancelToken | None) -> None:
        self._lock, self._cancel = lock, cancel

    def __enter__(self) -> None:
        while not self._lock.acquire(timeout=TURN_POLL_S):
            if self._cancel is not None:
                self._cancel.raise_if_cancelled()

    def __exit__(self, *_: object) -> None:
        self._lock.release()


def _pcm_after_header(data: bytes) -> np.ndarray:
    """Skip the streaming WAV header (its length fields are 0) and read 16-bit PCM to the end."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise EngineRequestFailed(f"{NAME} stream does not start with a WAV header")
    offset = 12
    while offset + 8 <= len(data):
        chunk_id, size = data[offset : offset + 4], struct.unpack("<I", data[offset + 4 : offset + 8])[0]
        if chunk_id == b"fmt ":
            channels, rate, _, _, bits = struct.unpack("<HIIHH", data[offset + 10 : offset + 24])
            if (channels, rate, bits) != (1, SAMPLE_RATE, 16):
                raise EngineRequestFailed(f"{NAME} stream format is {channels} ch {rate} Hz {bits} bit")
        if chunk_id == b"data":
            pcm = data[offset + 8 :]
            pcm = pcm[: len(pcm) // 2 * 2]
            return np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
        offset += 8 + size
    raise EngineRequestFailed(f"{NAME} stream has no data chunk")
