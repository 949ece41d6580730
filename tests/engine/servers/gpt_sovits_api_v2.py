"""A stand-in for GPT-SoVITS's ``api_v2.py`` with only the model stubbed.

api_v2 is a plain FastAPI app, so this reproduces its routes and each behaviour the adapter
meets; every one names the upstream file and line it follows (RVC-Boss/GPT-SoVITS at
48b1a01: ``api_v2.py`` and ``GPT_SoVITS/TTS_infer_pack/TTS.py``). The "model" speaks a buzz.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from pydantic import BaseModel

from tests.engine.servers.audio import buzz, wav_bytes

# TTS.py 275-276 (TTS_Config.v1_languages / v2_languages), chosen by version at 338 and 401.
V1_LANGUAGES = ["auto", "en", "zh", "ja", "all_zh", "all_ja"]
V2_LANGUAGES = ["auto", "auto_yue", "en", "zh", "ja", "yue", "ko", "all_zh", "all_ja", "all_yue", "all_ko"]
# TTS.py 1231: the output rate is the SoVITS rate (32 kHz), or the vocoder's for v3 (24 kHz) and v4 (48 kHz).
OUTPUT_RATES = {"v1": 32000, "v2": 32000, "v2Pro": 32000, "v2ProPlus": 32000, "v3": 24000, "v4": 48000}
# text_segmentation_method.py's registered methods (api_v2.py 125, 131, 337).
CUT_METHODS = ["cut0", "cut1", "cut2", "cut3", "cut4", "cut5"]


@dataclass
class Model:
    """What the test switches: the weights' version and a failure inside inference."""

    version: str = "v2"
    fail_inference: bool = False
    # Network faults rather than upstream behaviour: a proxy answering with its own page, a
    # slow answer, a connection dropped mid-body.
    html_instead: bool = False
    delay_s: float = 0.0
    drop_mid_body: bool = False
    requests: list[dict[str, Any]] = field(default_factory=list)


class TtsRequest(BaseModel):
    # api_v2.py 154-178 (TTS_Request), the fields the adapter sends.
    text: str | None = None
    text_lang: str | None = None
    ref_audio_path: str | None = None
    prompt_lang: str | None = None
    prompt_text: str = ""
    text_split_method: str = "cut5"
    batch_size: int = 1
    speed_factor: float = 1.0
    media_type: str = "wav"
    streaming_mode: bool | int = False


def build_app(model: Model) -> FastAPI:
    app = FastAPI()  # api_v2.py 151: a default FastAPI app (OpenAPI at /openapi.json)

    def languages() -> list[str]:
        return V1_LANGUAGES if model.version == "v1" else V2_LANGUAGES

    def check_params(req: dict[str, Any]) -> Response | None:
        # api_v2.py 305-342, in upstream's order and wording.
        if req.get("ref_audio_path") in (None, ""):
            return JSONResponse(status_code=400, content={"message": "ref_audio_path is required"})
        if req.get("text") in (None, ""):
            return JSONResponse(status_code=400, content={"message": "text is required"})
        text_lang = req.get("text_lang")
        if text_lang in (None, ""):
            return JSONResponse(status_code=400, content={"message": "text_lang is required"})
        if text_lang.lower() not in languages():
            message = f"text_lang: {text_lang} is not supported in version {model.version}"
            return JSONResponse(status_code=400, content={"message": message})
        prompt_lang = req.get("prompt_lang")
        if prompt_lang in (None, ""):
            return JSONResponse(status_code=400, content={"message": "prompt_lang is required"})
        if prompt_lang.lower() not in languages():
            message = f"prompt_lang: {prompt_lang} is not supported in version {model.version}"
            return JSONResponse(status_code=400, content={"message": message})
        if req.get("media_type", "wav") not in ("wav", "raw", "ogg", "aac"):
            return JSONResponse(
                status_code=400, content={"message": f"media_type: {req['media_type']} is not supported"}
            )
        if req.get("text_split_method", "cut5") not in CUT_METHODS:
            message = f"text_split_method:{req['text_split_method']} is not supported"
            return JSONResponse(status_code=400, content={"message": message})
        return None

    def run(req: dict[str, Any]) -> tuple[int, np.ndarray]:
        """TTS.run as api_v2 uses it without streaming: the first item it yields."""
        # TTS.py 1111-1120: an empty prompt text is refused by v3/v4 weights (they use a vocoder).
        if req.get("prompt_text") in (None, "") and model.version in ("v3", "v4"):
            raise RuntimeError("prompt_text cannot be empty when using SoVITS_V3")
        # TTS.py 1135-1136: the reference is a path on the engine's own disk.
        path = Path(req["ref_audio_path"])
        if not path.exists():
            raise ValueError(f"{path} not exists")
        # TTS.py 814-816: librosa.load(ref, sr=16000); outside 48000–160000 samples is refused.
        samples_16k = int(sf.info(str(path)).duration * 16000)
        if samples_16k > 160000 or samples_16k < 48000:
            raise OSError("参考音频在3~10秒范围外，请更换！")
        # TTS.py 1515-1526: an exception during inference first yields one second of 16 kHz
        # zeros ("must return an empty audio, or the GPU memory is not freed"), then re-raises;
        # api_v2 only reads that first item.
        if model.fail_inference:
            return 16000, np.zeros(16000, dtype=np.int16)
        rate = OUTPUT_RATES[model.version]
        speech = buzz(req["text"], rate)
        speech = speech[: int(len(speech) / float(req.get("speed_factor", 1.0)))]
        return rate, (speech * 32767).astype(np.int16)

    def tts_handle(req: dict[str, Any]) -> Response:
        model.requests.append(req)
        if (refusal := check_params(req)) is not None:  # api_v2.py 384-386
            return refusal
        if req.get("streaming_mode") not in (False, 0):
            return JSONResponse(status_code=400, content={"message": "this stand-in only answers streaming_mode 0"})
        if model.html_instead:
            return PlainTextResponse("<html>bad gateway</html>", media_type="text/html")
        time.sleep(model.delay_s)
        try:
            rate, audio = run(req)  # api_v2.py 417-441: sr, audio_data = next(tts_generator)
        except Exception as exc:  # api_v2.py 444-445
            return JSONResponse(status_code=400, content={"message": "tts failed", "Exception": str(exc)})
        # api_v2.py 232-235 (pack_wav: sf.write(..., format="wav")) and 443 (media_type audio/wav).
        body = wav_bytes(audio.astype(np.float32) / 32768.0, rate)
        if model.drop_mid_body:
            return StreamingResponse(_dropped(body[:2000]), media_type="audio/wav")
        return Response(body, media_type="audio/wav")

    @app.get("/tts")
    def tts_get(
        text: str | None = None,
        text_lang: str | None = None,
        ref_audio_path: str | None = None,
        prompt_lang: str | None = None,
        prompt_text: str = "",
        speed_factor: float = 1.0,
        media_type: str = "wav",
        streaming_mode: bool | int = False,
    ) -> Response:
        # api_v2.py 482-488: lower() on the languages before any check, so a bare GET /tts
        # (text_lang None) raises AttributeError and FastAPI answers 500.
        req = {
            "text": text,
            "text_lang": text_lang.lower(),  # type: ignore[union-attr]
            "ref_audio_path": ref_audio_path,
            "prompt_text": prompt_text,
            "prompt_lang": prompt_lang.lower(),  # type: ignore[union-attr]
            "speed_factor": float(speed_factor),
            "media_type": media_type,
            "streaming_mode": streaming_mode,
        }
        return tts_handle(req)

    @app.post("/tts")
    def tts_post(request: TtsRequest) -> Response:
        return tts_handle(request.model_dump())  # api_v2.py 511-514

    @app.get("/set_gpt_weights")
    def set_gpt_weights(weights_path: str | None = None) -> Response:
        # api_v2.py 545-554: the route exists; the stand-in has no weights to switch.
        return JSONResponse(status_code=400, content={"message": "gpt weight path is required"})

    @app.get("/set_sovits_weights")
    def set_sovits_weights(weights_path: str | None = None) -> Response:
        return JSONResponse(status_code=400, content={"message": "sovits weight path is required"})  # 557-565

    return app


def _dropped(first: bytes) -> Iterator[bytes]:
    yield first
    raise ConnectionResetError("engine crashed mid-body")  # uvicorn aborts the response
