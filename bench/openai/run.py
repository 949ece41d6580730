"""OpenAI speech API benchmark: latency of `POST /v1/audio/speech` on the embedded engine.

Runs the real gateway (embedded engine, dev settings, SQLite in a temporary folder) behind a
uvicorn server on a loopback port and talks to it with the official `openai` client:

- a 300-character input (311 here) streamed (`stream_format=audio`): seconds to the first audio bytes, in
  pcm (what a player reads as it comes), aac and mp3, next to the native
  `POST /v1/synthesize?stream=true` with the same text. Target: first bytes ≤ 1.0 s.
- the same request whole (no `stream_format`) in wav and in mp3, alternated: what the mp3 encoder
  and the check of the mark in its bytes add. Target: mp3 ≤ 5 % over wav.

Every response is checked for the request's verified keyed payload (the count of unmarked
responses must be zero). Writes docs/benchmarks/openai.md and .json.

    .venv/bin/python -m bench.openai.run [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import openai

from bench.corpus import REPO_ROOT, english_clips, speech_dir
from bench.gateway.run import serve_ready
from bench.openai.report import write_report
from bench.run_info import machine
from gateway.app import create_app
from gateway.audio_io import decode_audio
from gateway.auth import Role
from gateway.db import upgrade
from gateway.dependencies import gateway_of
from gateway.dev_tokens import mint_dev_token
from gateway.openai_api.encodings import PCM_SAMPLE_RATE
from gateway.settings import Settings
from gateway.synthesis.steps import payload_for
from tests.gateway.synthesis_fixtures import PURPOSE, TENANT, grant_voice, seed_cohort

# About 300 characters (311), four sentences: the stream's first chunk is the first ~90 characters.
TEXT_300 = (
    "The museum opens its new exhibition on Saturday morning, just after nine. Visitors can see "
    "paintings, old maps and letters from the harbour town. Guided tours start every hour until "
    "the evening, and the café on the top floor serves lunch. Tickets are free for children under "
    "twelve and for students on weekdays."
)
TARGETS = {"first_bytes_s_max": 1.0, "mp3_over_wav_max": 0.05}


def _marked(app, body: bytes, response_format: str, audit_id: int) -> bool:
    if response_format == "pcm":
        samples, rate = np.frombuffer(body, dtype="<i2").astype(np.float32) / 32767.0, PCM_SAMPLE_RATE
    else:
        decoded = decode_audio(body)
        samples, rate = decoded.samples, decoded.sample_rate
    keyed = gateway_of(app).components.watermark.detect(samples, sample_rate=rate).scheme("keyed")
    return keyed.payload_verified and keyed.payload == payload_for(audit_id)


def _streamed(client: openai.OpenAI, voice: str, response_format: str) -> tuple[float, float, bytes, int]:
    started = time.perf_counter()
    first = None
    body = b""
    with client.audio.speech.with_streaming_response.create(
        model="tts-1", voice=voice, input=TEXT_300, response_format=response_format, stream_format="audio"
    ) as response:
        for data in response.iter_bytes():
            first = first or time.perf_counter() - started
            body += data
        audit_id = int(response.headers["x-clonegate-audit-id"])
    assert first is not None
    return first, time.perf_counter() - started, body, audit_id


def _native_stream(base: str, token: str, voice: str) -> float:
    started = time.perf_counter()
    with httpx.stream(
        "POST",
        f"{base}/v1/synthesize?stream=true",
        headers={"Authorization": f"Bearer {token}"},
        timeout=300,
        json={"voice_id": voice, "text": TEXT_300, "language": "en", "purpose": PURPOSE},
    ) as response:
        response.raise_for_status()
        first = None
        for _ in response.iter_bytes():
            first = first or time.perf_counter() - started
    assert first is not None
    return first


def _whole(client: openai.OpenAI, voice: str, response_format: str) -> tuple[float, float, bytes, int]:
    """End-to-end seconds, the engine step's seconds (Server-Timing), the body and its audit id."""
    started = time.perf_counter()
    raw = client.audio.speech.with_raw_response.create(
        model="tts-1", voice=voice, input=TEXT_300, response_format=response_format
    )
    elapsed = time.perf_counter() - started
    steps = dict(part.split(";dur=") for part in raw.headers["server-timing"].split(", "))
    return elapsed, float(steps["engine"]) / 1000, raw.content, int(raw.headers["x-clonegate-audit-id"])


def _summary(values: list[float]) -> dict:
    return {"mean": statistics.mean(values), "median": statistics.median(values), "max": max(values)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    run_machine = machine()
    settings = Settings(
        mode="dev",
        data_dir=Path(tempfile.mkdtemp(prefix="clonegate-bench-openai-")),
        openai_default_purposes={TENANT: PURPOSE},
    )
    upgrade(settings.resolved_database_url)
    app = create_app(settings)
    seed_cohort(app, speech_dir())
    server, base = serve_ready(app)
    voice = grant_voice(app, english_clips()[1], issuer=settings.jwt_issuer, max_uses=10_000).voice_id
    token = mint_dev_token(settings, subject="bench-client", roles=[Role.CLIENT], tenant=TENANT)
    client = openai.OpenAI(base_url=f"{base}/v1", api_key=token, max_retries=0, timeout=300)
    unmarked = 0
    try:
        _whole(client, voice, "wav")  # the first request pays one-off costs
        first_bytes: dict[str, list[float]] = {"pcm": [], "aac": [], "mp3": [], "native_wav": []}
        whole: dict[str, list[float]] = {"wav": [], "mp3": []}
        engine: dict[str, list[float]] = {"wav": [], "mp3": []}
        audio_s = 0.0
        for _ in range(args.repeats):
            for response_format in ("pcm", "aac", "mp3"):
                first, _total, body, audit_id = _streamed(client, voice, response_format)
                first_bytes[response_format].append(first)
                unmarked += not _marked(app, body, response_format, audit_id)
            first_bytes["native_wav"].append(_native_stream(base, token, voice))
            for response_format in ("wav", "mp3"):
                elapsed, engine_s, body, audit_id = _whole(client, voice, response_format)
                whole[response_format].append(elapsed)
                engine[response_format].append(engine_s)
                unmarked += not _marked(app, body, response_format, audit_id)
                if response_format == "wav":
                    audio_s = decode_audio(body).duration_seconds
            print(f"first bytes {[(k, round(v[-1], 2)) for k, v in first_bytes.items()]}", flush=True)
            print(f"whole {[(k, round(v[-1], 2)) for k, v in whole.items()]}", flush=True)
        # The engine's time differs from run to run as much as the encoder costs: compare what the
        # gateway adds to the engine (end to end minus engine) as a share of the wav request.
        wav_rest = [w - e for w, e in zip(whole["wav"], engine["wav"], strict=True)]
        mp3_rest = [w - e for w, e in zip(whole["mp3"], engine["mp3"], strict=True)]
        mp3_over_wav = (statistics.mean(mp3_rest) - statistics.mean(wav_rest)) / statistics.mean(whole["wav"])
        summary = {
            "machine": run_machine,
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
            "command": f".venv/bin/python -m bench.openai.run --repeats {args.repeats}",
            "repeats": args.repeats,
            "text_chars": len(TEXT_300),
            "audio_s": audio_s,
            "first_bytes_s": {name: _summary(values) for name, values in first_bytes.items()},
            "whole_s": {name: _summary(values) for name, values in whole.items()},
            "engine_s": {name: _summary(values) for name, values in engine.items()},
            "mp3_over_wav": mp3_over_wav,
            "mp3_over_wav_end_to_end": statistics.mean(whole["mp3"]) / statistics.mean(whole["wav"]) - 1,
            "unmarked_responses": unmarked,
            "targets": TARGETS,
        }
        write_report(summary, REPO_ROOT / "docs" / "benchmarks")
        print(f"pcm first bytes mean {summary['first_bytes_s']['pcm']['mean']:.2f} s; mp3 over wav {mp3_over_wav:.1%}")
    finally:
        server.should_exit = True


if __name__ == "__main__":
    main()
