"""Local stand-ins for the real engines' HTTP servers, implementing their documented contracts.

- GPT-SoVITS ``api_v2.py``: ``GET|POST /tts``; 400 JSON ``{"message": ...}`` on missing or
  unsupported fields; the reference is read from ``ref_audio_path`` on the server's disk.
- xtts-streaming-server: ``POST /clone_speaker`` (multipart ``wav_file``) -> latents JSON;
  ``POST /tts_stream`` (pydantic-validated JSON, 422 otherwise) -> WAV header with zero length,
  then raw 16-bit PCM at 24 kHz.
- Gradio (Zonos ``generate_audio``): ``/gradio_api/upload``, ``/gradio_api/call/generate_audio``
  (event id), its SSE result stream, ``/gradio_api/file=``.

``behaviour`` switches a server into failure modes: slow, dropped mid-stream, wrong content
type, engine error. The "audio" is a voiced buzz 0.07 s per character, so length checks apply.
"""

from __future__ import annotations

import io
import json
import threading
import time
import wave
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import soundfile as sf
import uvicorn
from fastapi import Body, FastAPI, Request, UploadFile
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from pydantic import BaseModel

SOVITS_LANGUAGES = {"zh", "en", "ja", "ko", "yue"}


@dataclass
class Behaviour:
    mode: str = "ok"  # ok | slow | drop | html | error
    delay_s: float = 0.0
    requests: list[dict] = field(default_factory=list)
    uploads: dict[str, bytes] = field(default_factory=dict)


def buzz(text: str, rate: int) -> np.ndarray:
    t = np.arange(int(0.07 * len(text) * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * 140 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t))).astype(np.float32)


def wav_bytes(audio: np.ndarray, rate: int) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, audio, rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


class XttsStreamingInputs(BaseModel):
    speaker_embedding: list[float]
    gpt_cond_latent: list[list[float]]
    text: str
    language: Literal["en", "de", "fr", "es", "it", "pl", "pt", "tr", "ru", "nl", "cs", "ar", "zh", "ja", "hu", "ko"]
    add_wav_header: bool = True
    stream_chunk_size: str = "20"


def build_app(behaviour: Behaviour) -> FastAPI:
    app = FastAPI()

    def failure() -> Response | None:
        if behaviour.mode == "slow":
            time.sleep(behaviour.delay_s)
        if behaviour.mode == "html":
            return PlainTextResponse("<html>proxy error</html>", media_type="text/html")
        return None

    def dropped_stream(first: bytes):
        yield first
        raise ConnectionResetError("engine crashed mid-stream")  # uvicorn aborts the response

    # --- GPT-SoVITS api_v2 ----------------------------------------------------------------

    def sovits(req: dict) -> Response:
        behaviour.requests.append({"path": "/tts", **req})
        for name in ("ref_audio_path", "text", "text_lang", "prompt_lang"):
            if req.get(name) in (None, ""):
                return JSONResponse(status_code=400, content={"message": f"{name} is required"})
        for name in ("text_lang", "prompt_lang"):
            if req[name].lower() not in SOVITS_LANGUAGES:
                return JSONResponse(status_code=400, content={"message": f"{name}: {req[name]} is not supported"})
        if req.get("media_type", "wav") not in ("wav", "raw", "ogg", "aac"):
            return JSONResponse(status_code=400, content={"message": "media_type is not supported"})
        if not Path(req["ref_audio_path"]).is_file():  # the real server opens the path on its host
            return JSONResponse(
                status_code=400, content={"message": "tts failed", "Exception": f"{req['ref_audio_path']} not found"}
            )
        if (answer := failure()) is not None:
            return answer
        if behaviour.mode == "error":
            return JSONResponse(status_code=400, content={"message": "tts failed", "Exception": "CUDA out of memory"})
        speech = buzz(req["text"], 32000)
        audio = wav_bytes(speech[: int(len(speech) / float(req.get("speed_factor", 1.0)))], 32000)
        if behaviour.mode == "drop":
            return StreamingResponse(dropped_stream(audio[:2000]), media_type="audio/wav")
        return Response(audio, media_type="audio/wav")

    @app.get("/tts")
    def sovits_get(request: Request) -> Response:
        return sovits(dict(request.query_params))

    @app.post("/tts")
    def sovits_post(req: dict = Body(...)) -> Response:
        return sovits(req)

    # --- xtts-streaming-server -------------------------------------------------------------

    @app.get("/")
    def docs_page() -> Response:
        return PlainTextResponse("docs", media_type="text/html")

    @app.post("/clone_speaker")
    def clone_speaker(wav_file: UploadFile) -> Response:
        data = wav_file.file.read()
        behaviour.requests.append({"path": "/clone_speaker", "bytes": len(data), "content_type": wav_file.content_type})
        try:
            audio, rate = sf.read(io.BytesIO(data))
        except RuntimeError:
            return JSONResponse(status_code=500, content={"detail": "Internal Server Error"})
        if (answer := failure()) is not None:
            return answer
        seed = int(abs(audio[:1000]).sum() * 1000) % 2**32
        rng = np.random.default_rng(seed)
        latent = rng.normal(0, 1, (32, 1024)).astype(np.float16)
        embedding = rng.normal(0, 0.05, 512).astype(np.float16)
        return JSONResponse(
            {"gpt_cond_latent": latent.astype(float).tolist(), "speaker_embedding": embedding.astype(float).tolist()}
        )

    @app.post("/tts_stream")
    def tts_stream(parsed_input: XttsStreamingInputs) -> Response:
        behaviour.requests.append(
            {
                "path": "/tts_stream",
                "text": parsed_input.text,
                "language": parsed_input.language,
                "latent_frames": len(parsed_input.gpt_cond_latent),
                "embedding_dim": len(parsed_input.speaker_embedding),
            }
        )
        if (answer := failure()) is not None:
            return answer
        pcm = (buzz(parsed_input.text, 24000) * 32767).astype("<i2").tobytes()
        header = io.BytesIO()
        with wave.open(header, "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(24000)
            out.writeframes(b"")

        def chunks():
            yield header.getvalue()
            step = 24000  # half a second of samples per chunk
            for start in range(0, len(pcm), step):
                if behaviour.mode == "drop" and start > 0:
                    raise ConnectionResetError("engine crashed mid-stream")
                time.sleep(behaviour.delay_s if behaviour.mode == "paced" else 0)
                yield pcm[start : start + step]

        return StreamingResponse(chunks(), media_type="audio/wav")

    # --- Gradio (Zonos) -------------------------------------------------------------------

    @app.get("/gradio_api/info")
    def gradio_info() -> dict:
        return {"named_endpoints": {"/generate_audio": {}}}

    @app.post("/gradio_api/upload")
    async def gradio_upload(request: Request) -> Response:
        form = await request.form()
        files = form.getlist("files")
        paths = []
        for item in files:
            path = f"/tmp/gradio/{len(behaviour.uploads)}/{item.filename}"
            behaviour.uploads[path] = await item.read()
            paths.append(path)
        return JSONResponse(paths)

    @app.post("/gradio_api/call/generate_audio")
    def gradio_call(body: dict = Body(...)) -> Response:
        data = body.get("data")
        behaviour.requests.append({"path": "/gradio_api/call/generate_audio", "data": data})
        if not isinstance(data, list) or len(data) != 29:
            return JSONResponse(status_code=422, content={"detail": "expected 29 inputs"})
        speaker = data[3]
        if not isinstance(speaker, dict) or speaker.get("path") not in behaviour.uploads:
            return JSONResponse(status_code=422, content={"detail": "speaker audio must be an uploaded file"})
        event_id = f"event{len(behaviour.requests)}"
        behaviour.requests[-1]["event_id"] = event_id
        return JSONResponse({"event_id": event_id})

    @app.get("/gradio_api/call/generate_audio/{event_id}")
    def gradio_result(event_id: str) -> Response:
        call = next((r for r in behaviour.requests if r.get("event_id") == event_id), None)
        if (answer := failure()) is not None:
            return answer

        def events():
            yield "event: generating\ndata: null\n\n"
            if behaviour.mode == "error" or call is None:
                yield 'event: error\ndata: "CUDA out of memory"\n\n'
                return
            text, rate_factor = call["data"][1], call["data"][16] / 15.0
            audio = buzz(text, 44100)
            audio = audio[: int(len(audio) / rate_factor)]
            path = f"/tmp/gradio/out/{event_id}.wav"
            behaviour.uploads[path] = wav_bytes(audio, 44100)
            # A hostile engine could point "url" anywhere; clients must not follow it.
            result = [
                {
                    "path": path,
                    "url": f"http://attacker.invalid/file={path}",
                    "orig_name": "audio.wav",
                    "meta": {"_type": "gradio.FileData"},
                },
                420,
            ]
            yield f"event: complete\ndata: {json.dumps(result)}\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    @app.get("/gradio_api/file={path:path}")
    def gradio_file(path: str) -> Response:
        data = behaviour.uploads.get("/" + path.lstrip("/"))
        if data is None:
            return JSONResponse(status_code=404, content={"detail": "Not Found"})
        return Response(data, media_type="audio/wav")

    return app


class FakeEngineServer:
    """Runs the fake app with uvicorn on a free local port in a background thread."""

    def __init__(self) -> None:
        self.behaviour = Behaviour()
        config = uvicorn.Config(build_app(self.behaviour), host="127.0.0.1", port=0, log_level="error", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def __enter__(self) -> FakeEngineServer:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        if not self._server.started:
            raise RuntimeError("fake engine server did not start")
        port = self._server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    def __exit__(self, *_: object) -> None:
        self._server.should_exit = True
        self._thread.join(5)

    def reset(self, mode: str = "ok", delay_s: float = 0.0) -> None:
        self.behaviour.mode = mode
        self.behaviour.delay_s = delay_s
        self.behaviour.requests.clear()
