"""Gateway benchmark: where the time of a synthesis request goes, throughput, detector latency.

Runs the real gateway (embedded engine, dev settings, SQLite in a temporary folder) behind a
uvicorn server on a loopback port and talks to it over HTTP:

- a 10 s utterance, several times: per-step seconds from the Server-Timing header, the
  gateway's own overhead (everything but the engine) as a share of the end-to-end time, with
  the default watermark stack (the keyed layer alone); the same with PerTh embedded after it
  (``CLONEGATE_WATERMARK_SCHEMES=["keyed", "perth"]``), to show what that layer costs;
- an 18 s text streamed with ?stream=true: time to the first audio and to the end;
- throughput with 4 concurrent clients;
- /v1/detect latency for a 10 s and a 60 s clip.

Every response with audio is checked for a verified mark (the count of unmarked responses must
be zero). Writes docs/benchmarks/gateway.md and .json.

    .venv/bin/python -m bench.gateway.run [--repeats 5] [--concurrent-requests 8]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import soundfile
import uvicorn

from bench.corpus import REPO_ROOT, english_clips, speech_dir
from bench.gateway.report import write_report
from bench.run_info import machine
from gateway.app import create_app
from gateway.audio_io import decode_audio
from gateway.auth import Role
from gateway.db import upgrade
from gateway.dependencies import gateway_of
from gateway.dev_tokens import mint_dev_token
from gateway.settings import Settings
from tests.gateway.conftest import free_port, synthesis_replaced
from tests.gateway.speech import wav_bytes
from tests.gateway.synthesis_fixtures import PURPOSE, TENANT, grant_voice, seed_cohort
from watermark import WatermarkConfig, build_stack

# About 18 s of speech, streamed in chunks of whole sentences.
LONG_TEXT = (
    "The old lighthouse keeper climbed the narrow stairs every evening before the sun went down. "
    "He trimmed the wick, polished the great lens and wrote the weather into a worn leather book. "
    "Ships passing in the night never saw him, but they trusted the light he kept burning for them. "
    "When the storm finally came in November, the light kept shining until the sky turned grey."
)
# About 10 s of speech from the embedded voice.
UTTERANCE = (
    "The museum opens its new exhibition on Saturday morning. Visitors can see paintings, old maps "
    "and letters from the harbour town, and guided tours start every hour until the evening."
)


def serve_ready(app, *, ready_within_s: float = 180) -> tuple[uvicorn.Server, str]:
    """The app on a loopback port under a real uvicorn, once its /readyz answers 200."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + ready_within_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/readyz", timeout=5).status_code == 200:
                return server, base
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise SystemExit("the gateway did not become ready")


def _synthesize(base: str, token: str, voice_id: str) -> tuple[float, dict[str, float], bytes, int]:
    started = time.perf_counter()
    response = httpx.post(
        f"{base}/v1/synthesize",
        headers={"Authorization": f"Bearer {token}"},
        timeout=300,
        json={"voice_id": voice_id, "text": UTTERANCE, "language": "en", "purpose": PURPOSE},
    )
    elapsed = time.perf_counter() - started
    response.raise_for_status()
    steps = {}
    for part in response.headers["server-timing"].split(", "):
        name, duration = part.split(";dur=")
        steps[name] = float(duration) / 1000
    return elapsed, steps, response.content, int(response.headers["x-clonegate-audit-id"])


def _stream_first_chunk(base: str, token: str, voice_id: str) -> tuple[float, float, bytes, int]:
    """Seconds to the first audio bytes and to the end of a streamed long text, and the body."""
    started = time.perf_counter()
    first = None
    body = b""
    with httpx.stream(
        "POST",
        f"{base}/v1/synthesize?stream=true",
        headers={"Authorization": f"Bearer {token}"},
        timeout=300,
        json={"voice_id": voice_id, "text": LONG_TEXT, "language": "en", "purpose": PURPOSE},
    ) as response:
        response.raise_for_status()
        for data in response.iter_bytes():
            first = first or time.perf_counter() - started
            body += data
    return first, time.perf_counter() - started, body, int(response.headers["x-clonegate-audit-id"])


def _sequential(base: str, token: str, voice_id: str, repeats: int, app) -> tuple[list[dict], int]:
    _synthesize(base, token, voice_id)  # the first request pays one-off costs
    runs, unmarked = [], 0
    for _ in range(repeats):
        elapsed, steps, body, audit_id = _synthesize(base, token, voice_id)
        unmarked += not _marked(app, body, audit_id)
        runs.append({"total_s": elapsed, "audio_s": decode_audio(body).duration_seconds, "steps_s": steps})
    return runs, unmarked


def _overhead(runs: list[dict]) -> dict:
    """The gateway's own time (end to end minus the engine step) and its share of the total."""
    overhead = [r["total_s"] - r["steps_s"]["engine"] for r in runs]
    return {
        "mean": statistics.mean(overhead),
        "max": max(overhead),
        "share": statistics.mean(o / r["total_s"] for o, r in zip(overhead, runs, strict=True)),
    }


def _marked(app, body: bytes, audit_id: int) -> bool:
    decoded = decode_audio(body)
    keyed = (
        gateway_of(app).components.watermark.detect(decoded.samples, sample_rate=decoded.sample_rate).scheme("keyed")
    )
    return keyed.payload_verified and int.from_bytes(keyed.payload, "big") == audit_id


def _detect_latency(base: str, token: str, data: bytes, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        response = httpx.post(
            f"{base}/v1/detect",
            headers={"Authorization": f"Bearer {token}"},
            timeout=300,
            files={"audio": ("clip.wav", data, "audio/wav")},
        )
        times.append(time.perf_counter() - started)
        response.raise_for_status()
    return times


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--concurrent-requests", type=int, default=8)
    args = parser.parse_args(argv)

    settings = Settings(mode="dev", data_dir=Path(tempfile.mkdtemp(prefix="clonegate-bench-")))
    upgrade(settings.resolved_database_url)
    app = create_app(settings)
    seed_cohort(app, speech_dir())  # the protected-speaker list is not ready without a cohort
    server, base = serve_ready(app)
    voice = grant_voice(app, english_clips()[1], issuer=settings.jwt_issuer, max_uses=10_000)
    client_token = mint_dev_token(settings, subject="bench-client", roles=[Role.CLIENT], tenant=TENANT)
    auditor_token = mint_dev_token(settings, subject="bench-auditor", roles=[Role.AUDITOR])
    unmarked = 0

    sequential, unmarked = _sequential(base, client_token, voice.voice_id, args.repeats, app)
    print(f"sequential: {[round(r['total_s'], 2) for r in sequential]}", flush=True)

    # The same requests with PerTh embedded after the keyed layer, to show what that layer costs;
    # the default stack is the keyed layer alone.
    with_perth = build_stack(WatermarkConfig(schemes=("keyed", "perth"), dev_mode=True))
    with synthesis_replaced(app, watermark=with_perth):
        perth_runs, perth_unmarked = _sequential(base, client_token, voice.voice_id, args.repeats, app)
    unmarked += perth_unmarked

    streamed = []
    for _ in range(max(2, args.repeats // 2)):
        first_s, total_s, body, audit_id = _stream_first_chunk(base, client_token, voice.voice_id)
        unmarked += not _marked(app, body, audit_id)
        streamed.append({"first_chunk_s": first_s, "total_s": total_s, "audio_s": decode_audio(body).duration_seconds})

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(
            pool.map(lambda _: _synthesize(base, client_token, voice.voice_id), range(args.concurrent_requests))
        )
    concurrent_wall = time.perf_counter() - started
    unmarked += sum(not _marked(app, body, audit_id) for _, _, body, audit_id in results)
    print(f"concurrent: {args.concurrent_requests} requests in {concurrent_wall:.1f} s", flush=True)

    clip, rate = soundfile.read(english_clips()[3], dtype="float32")
    long_speech = np.concatenate([soundfile.read(path, dtype="float32")[0] for path in english_clips()[:12]])
    detect = {
        "10s": _detect_latency(base, auditor_token, wav_bytes(np.resize(clip, 10 * rate), rate), args.repeats),
        "60s": _detect_latency(
            base, auditor_token, wav_bytes(long_speech[: 60 * rate], rate), max(2, args.repeats // 2)
        ),
    }
    server.should_exit = True

    engine = [r["steps_s"]["engine"] for r in sequential]
    totals = [r["total_s"] for r in sequential]
    overhead, perth_overhead = _overhead(sequential), _overhead(perth_runs)
    step_names = sorted({name for r in sequential for name in r["steps_s"]})
    summary = {
        "command": "python -m bench.gateway.run " + " ".join(argv or []),
        "machine": machine(),
        "utterance_audio_s": statistics.mean(r["audio_s"] for r in sequential),
        "end_to_end_s": {"mean": statistics.mean(totals), "max": max(totals)},
        "engine_s": {"mean": statistics.mean(engine)},
        "overhead_s": {"mean": overhead["mean"], "max": overhead["max"]},
        "overhead_share": overhead["share"],
        "steps_mean_s": {name: statistics.mean(r["steps_s"].get(name, 0.0) for r in sequential) for name in step_names},
        "keyed_then_perth_stack": {
            "end_to_end_s": statistics.mean(r["total_s"] for r in perth_runs),
            "engine_s": statistics.mean(r["steps_s"]["engine"] for r in perth_runs),
            "watermark_s": statistics.mean(r["steps_s"]["watermark"] for r in perth_runs),
            "overhead_s": perth_overhead["mean"],
            "overhead_share": perth_overhead["share"],
        },
        "stream": {
            "text_chars": len(LONG_TEXT),
            "audio_s": statistics.mean(r["audio_s"] for r in streamed),
            "first_chunk_s": statistics.mean(r["first_chunk_s"] for r in streamed),
            "total_s": statistics.mean(r["total_s"] for r in streamed),
        },
        "throughput": {
            "clients": 4,
            "requests": args.concurrent_requests,
            "wall_s": concurrent_wall,
            "requests_per_minute": 60 * args.concurrent_requests / concurrent_wall,
        },
        "detect_latency_s": {name: {"mean": statistics.mean(v), "max": max(v)} for name, v in detect.items()},
        "responses_with_unmarked_audio": unmarked,
        "responses_with_audio": 2 * args.repeats + args.concurrent_requests + len(streamed),
        "targets": {
            "overhead_share_max": 0.15,
            "overhead_s_max": 0.300,
            "detect_10s_s_max": 1.0,
            "unmarked_responses": 0,
        },
    }
    write_report(summary, REPO_ROOT / "docs" / "benchmarks")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
