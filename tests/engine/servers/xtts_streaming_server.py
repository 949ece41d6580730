"""A stand-in for coqui-ai/xtts-streaming-server's ``server/main.py`` with only the model stubbed.

It is a plain FastAPI app, so this reproduces its routes and each behaviour the adapter meets;
every one names the upstream line it follows (``server/main.py`` at 99286c1). The "model"
speaks a buzz and derives its latents from the reference.
"""

from __future__ import annotations

import io
import time
import wave
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import soundfile as sf
from fastapi import FastAPI, UploadFile
from fastapi.responses import PlainTextResponse, Response, StreamingResponse
from pydantic import BaseModel

from tests.engine.servers.audio import buzz

# The xtts_v2 model config's languages, which GET /languages returns (main.py 183-185).
XTTS_V2_LANGUAGES = [
    "en",
    "es",
    "fr",
    "de",
    "it",
    "pt",
    "pl",
    "tr",
    "ru",
    "nl",
    "cs",
    "ar",
    "zh-cn",
    "hu",
    "ko",
    "ja",
    "hi",
]
LATENT_FRAMES = 32  # get_conditioning_latents' default for xtts_v2 (gpt_cond_len 30 s, chunked)


@dataclass
class Model:
    """What the test switches: network faults rather than upstream behaviour."""

    mode: str = "ok"  # ok | html | drop | paced
    delay_s: float = 0.0
    requests: list[dict[str, Any]] = field(default_factory=list)
    streams_in_flight: int = 0
    most_streams_at_once: int = 0


class StreamingInputs(BaseModel):
    # main.py 101-107: language is a plain string, not checked by the API.
    speaker_embedding: list[float]
    gpt_cond_latent: list[list[float]]
    text: str
    language: str
    add_wav_header: bool = True
    stream_chunk_size: str = "20"


def wav_header(rate: int = 24000) -> bytes:
    # main.py 82-98 (encode_audio_common with no frames): a header whose lengths are zero.
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"")
    return buffer.getvalue()


def build_app(model: Model) -> FastAPI:
    # main.py 48-53: the title and the docs at "/".
    app = FastAPI(title="XTTS Streaming server", description="XTTS Streaming server", version="0.0.1", docs_url="/")

    @app.post("/clone_speaker")
    def predict_speaker(wav_file: UploadFile) -> Any:
        # main.py 56-68: latents of the uploaded file, squeezed, in half precision, as lists.
        data = wav_file.file.read()
        model.requests.append({"path": "/clone_speaker", "bytes": len(data), "content_type": wav_file.content_type})
        if model.mode == "html":
            return PlainTextResponse("<html>bad gateway</html>", media_type="text/html")
        audio, _ = sf.read(io.BytesIO(data))  # an unreadable file raises: FastAPI answers 500
        rng = np.random.default_rng(int(abs(audio[:1000]).sum() * 1000) % 2**32)
        latent = rng.normal(0, 1, (LATENT_FRAMES, 1024)).astype(np.float16)
        embedding = rng.normal(0, 0.05, 512).astype(np.float16)
        return {"gpt_cond_latent": latent.astype(float).tolist(), "speaker_embedding": embedding.astype(float).tolist()}

    def predict_streaming_generator(parsed: StreamingInputs) -> Iterator[bytes]:
        model.streams_in_flight += 1
        model.most_streams_at_once = max(model.most_streams_at_once, model.streams_in_flight)
        try:
            # main.py 120-127: model.inference_stream(text, language, ...) with text splitting on;
            # the tokenizer raises on a language the model does not have, inside the stream.
            if parsed.language not in XTTS_V2_LANGUAGES:
                raise NotImplementedError(f"Language '{parsed.language}' is not supported.")
            pcm = (buzz(parsed.text, 24000) * 32767).astype("<i2").tobytes()
            step = 24000  # half a second of samples per chunk
            for i, start in enumerate(range(0, len(pcm), step)):
                if model.mode == "drop" and i > 0:
                    raise ConnectionResetError("engine crashed mid-stream")
                if model.mode == "paced":
                    time.sleep(model.delay_s)
                # main.py 129-135: the header only with the first chunk, then raw PCM.
                if i == 0 and parsed.add_wav_header:
                    yield wav_header()
                yield pcm[start : start + step]
        finally:
            model.streams_in_flight -= 1

    @app.post("/tts_stream")
    def predict_streaming_endpoint(parsed_input: StreamingInputs) -> Response:
        model.requests.append(
            {
                "path": "/tts_stream",
                "text": parsed_input.text,
                "language": parsed_input.language,
                "latent_frames": len(parsed_input.gpt_cond_latent),
                "embedding_dim": len(parsed_input.speaker_embedding),
            }
        )
        if model.mode == "html":
            return PlainTextResponse("<html>bad gateway</html>", media_type="text/html")
        # main.py 138-143: headers (200, audio/wav) go out before the generator runs.
        return StreamingResponse(predict_streaming_generator(parsed_input), media_type="audio/wav")

    @app.get("/languages")
    def get_languages() -> list[str]:
        return XTTS_V2_LANGUAGES  # main.py 183-185: config.languages

    return app
