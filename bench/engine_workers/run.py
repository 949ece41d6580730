"""Engine workers benchmark, on a local Ray cluster of 2 logical CPUs (one per core):

- throughput: the same batch of sentences (about 3 s of speech each) through the gateway's
  engine client, 4 requests in flight, against 1 and then 2 replicas of the embedded engine;
  requests per minute and their ratio (target: 2 replicas >= 1.6x of 1);
- the Ray hop: a 10 s utterance from an engine that answers at once with ready audio
  (bench/engine_workers/echo.py), called in-process and through a worker; the difference per
  request, p50 and p95 (targets <= 25 ms and <= 60 ms);
- gateway memory: a fresh process builds the gateway's engine from settings, loads it and
  synthesizes once, in Ray mode and in embedded mode: resident memory and which engine modules
  it imported (target: none in Ray mode).

Writes docs/benchmarks/engine_workers.md and .json.

    .venv/bin/python -m bench.engine_workers [--requests 12] [--hop-repeats 40]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import ray
import soundfile
from ray import serve

from bench.corpus import REPO_ROOT, english_clips
from bench.engine_workers.echo import EchoEngine
from bench.engine_workers.report import write_report
from bench.run_info import commit, machine
from engine.interface import ReferenceClip, VoiceProfile
from engine.workers.client import RayServeEngine
from engine.workers.deployment import worker_application

SENTENCES = [
    "The morning train left the station a little after seven.",
    "She packed a small bag with bread, cheese and two apples.",
    "Rain had fallen all night and the fields were still wet.",
    "A dog barked twice at the gate and then fell silent.",
    "He wrote the numbers down and checked them once again.",
    "The market opened late because the road was closed.",
    "Children ran along the river, shouting at the ducks.",
    "Nobody knew who had left the lamp burning in the hall.",
]
# About ten seconds of speech in three sentences.
TEN_SECONDS = (
    "The old bridge was built from stone carried down from the hills by cart. "
    "For two hundred years it carried farmers and merchants. "
    "Today only walkers use it."
)
ENGINE_MODULES = ("piper", "onnxruntime", "pyworld", "engine.embedded", "torch")

MEMORY_PROBE = r"""
import json, sys, tempfile
from pathlib import Path
from engine.interface import VoiceProfile
from gateway.engines import build_engine
from gateway.settings import Settings

mode, profile_path = sys.argv[1], sys.argv[2]
with tempfile.TemporaryDirectory() as data:
    settings = Settings(mode="dev", data_dir=data, engine=mode, engine_worker_app="embedded")
    engine = build_engine(settings)
    engine.load()
    voice = VoiceProfile.from_json(Path(profile_path).read_text())
    audio = engine.synthesize(text="The gateway holds no engine.", language="en", voice=voice)
status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
print(json.dumps({
    "rss_mb": int(status["VmRSS"].split()[0]) / 1024,
    "peak_rss_mb": int(status["VmHWM"].split()[0]) / 1024,
    "engine_modules": [m for m in sys.argv[3].split(",") if m in sys.modules],
    "audio_s": round(audio.duration_s, 2),
}))
"""


def _deploy(name: str, args: dict, *, replicas: int) -> RayServeEngine:
    app = worker_application(args, num_replicas=replicas, ray_actor_options={"num_cpus": 1})
    serve.run(app, name=name, route_prefix=None)
    client = RayServeEngine(app_name=name, timeout_s=600, prepare_timeout_s=600)
    client.load()
    return client


def _throughput(client: RayServeEngine, voice: VoiceProfile, *, requests: int, replicas: int) -> dict:
    texts = [SENTENCES[i % len(SENTENCES)] for i in range(requests)]

    def one(text: str) -> float:
        return client.synthesize(text=text, language="en", voice=voice).duration_s

    with ThreadPoolExecutor(2 * replicas) as pool:  # warm every replica once, untimed
        list(pool.map(one, SENTENCES[: 2 * replicas]))
    started = time.monotonic()
    with ThreadPoolExecutor(4) as pool:
        audio_s = sum(pool.map(one, texts))
    wall = time.monotonic() - started
    return {
        "replicas": replicas,
        "requests": requests,
        "in_flight": 4,
        "wall_s": round(wall, 2),
        "audio_s": round(audio_s, 1),
        "requests_per_minute": round(requests / wall * 60, 1),
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }


def _hop(repeats: int) -> dict:
    local = EchoEngine()
    voice = local.prepare_voice(references=[])
    client = _deploy("echo", {"engine_class": "bench.engine_workers.echo:EchoEngine"}, replicas=1)

    def timed(engine: object) -> float:
        started = time.perf_counter()
        audio = engine.synthesize(text=TEN_SECONDS, language="en", voice=voice)  # type: ignore[attr-defined]
        elapsed = time.perf_counter() - started
        assert 9.0 < audio.duration_s < 11.5, audio.duration_s
        return elapsed

    for _ in range(5):
        timed(client)
    in_process = [timed(local) for _ in range(repeats)]
    through_ray = [timed(client) for _ in range(repeats)]
    base = statistics.median(in_process)
    added = sorted(max(0.0, t - base) * 1000 for t in through_ray)
    return {
        "utterance_s": round(local.synthesize(text=TEN_SECONDS, language="en", voice=voice).duration_s, 2),
        "repeats": repeats,
        "in_process_p50_ms": round(base * 1000, 2),
        "added_p50_ms": round(float(np.percentile(added, 50)), 2),
        "added_p95_ms": round(float(np.percentile(added, 95)), 2),
    }


def _memory(profile: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    found = {}
    for mode in ("ray", "embedded"):
        done = subprocess.run(
            [sys.executable, "-c", MEMORY_PROBE, mode, str(profile), ",".join(ENGINE_MODULES)],
            capture_output=True,
            text=True,
            env=env,
            cwd=REPO_ROOT,
            timeout=300,
            check=True,
        )
        found[mode] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=12)
    parser.add_argument("--hop-repeats", type=int, default=40)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "docs" / "benchmarks")
    options = parser.parse_args()
    started = time.monotonic()
    info = machine()
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        logging_level=logging.WARNING,
        runtime_env={"env_vars": {"PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}},
    )
    try:
        serve.start(proxy_location="Disabled")
        embedded = {"engine": "embedded", "options": {"device": "cpu"}}
        client = _deploy("embedded", embedded, replicas=1)
        samples, rate = soundfile.read(english_clips()[0], dtype="float32")
        voice = client.prepare_voice(references=[ReferenceClip(audio=samples[: rate * 8], sample_rate=rate)])
        one = _throughput(client, voice, requests=options.requests, replicas=1)
        client = _deploy("embedded", embedded, replicas=2)
        two = _throughput(client, voice, requests=options.requests, replicas=2)
        with tempfile.TemporaryDirectory() as folder:
            profile = Path(folder) / "voice.json"
            profile.write_text(voice.to_json())
            memory = _memory(profile)
        serve.delete("embedded")  # frees both CPUs for the hop's replica
        hop = _hop(options.hop_repeats)
    finally:
        serve.shutdown()
        ray.shutdown()
    summary = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "commit": commit("bench/engine_workers", "engine"),
        "command": f"python -m bench.engine_workers --requests {options.requests} --hop-repeats {options.hop_repeats}",
        "machine": info,
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "duration_s": round(time.monotonic() - started, 1),
        "throughput": {"one_replica": one, "two_replicas": two},
        "throughput_ratio": round(two["requests_per_minute"] / one["requests_per_minute"], 2),
        "hop": hop,
        "gateway_memory": memory,
    }
    write_report(summary, options.out)
    print(json.dumps(summary, indent=2))
