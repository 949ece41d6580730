"""docs/benchmarks/engine_workers.md and .json from one run of bench.engine_workers."""

from __future__ import annotations

import json
from pathlib import Path

TARGETS = {"ratio": 1.6, "added_p50_ms": 25.0, "added_p95_ms": 60.0}
# Above this load average on 2 cores other processes take a large share of them, so a ratio
# of replicas' throughput says how the machine was shared, not how the replicas scale.
BUSY_LOAD = 2.5


def _met(ok: bool) -> str:
    return "yes" if ok else "**no**"


def write_report(summary: dict, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "engine_workers.json").write_text(json.dumps(summary, indent=2) + "\n")
    one, two = summary["throughput"]["one_replica"], summary["throughput"]["two_replicas"]
    hop, memory, info = summary["hop"], summary["gateway_memory"], summary["machine"]
    loads = [info["load_average_at_start"][0], one["load_average_after"][0], two["load_average_after"][0]]
    busy = max(loads) > BUSY_LOAD
    ray_modules = memory["ray"]["engine_modules"]
    lines = [
        "# Engine workers on Ray Serve",
        "",
        f"Run {summary['date']} at commit `{summary['commit']}` with `{summary['command']}` "
        f"({summary['duration_s']} s), on {info['nproc']} cores ({info['cpu']}), Python {info['python']}.",
        f"Load average (1 min): {loads[0]} at the start, {loads[1]} after the 1-replica run, "
        f"{loads[2]} after the 2-replica run, {summary['load_average_at_end'][0]} at the end.",
        "",
        "A local Ray cluster of 2 logical CPUs; replicas of the embedded engine take 1 CPU each",
        "(`OMP_NUM_THREADS=1`); the gateway's engine client (`engine.workers.client.RayServeEngine`)",
        "sends every request through a Serve deployment handle, sentences streamed back.",
        "",
        "| measure | target | measured | met |",
        "|---|---|---|---|",
        f"| throughput, 2 replicas / 1 replica | >= {TARGETS['ratio']}x | {summary['throughput_ratio']}x | "
        f"{_met(summary['throughput_ratio'] >= TARGETS['ratio'])}{' (under load: see below)' if busy else ''} |",
        f"| latency the Ray hop adds, {hop['utterance_s']} s utterance, p50 | <= {TARGETS['added_p50_ms']:.0f} ms | "
        f"{hop['added_p50_ms']} ms | {_met(hop['added_p50_ms'] <= TARGETS['added_p50_ms'])} |",
        f"| the same, p95 | <= {TARGETS['added_p95_ms']:.0f} ms | {hop['added_p95_ms']} ms | "
        f"{_met(hop['added_p95_ms'] <= TARGETS['added_p95_ms'])} |",
        f"| engine modules in a gateway process, Ray mode | none | {', '.join(ray_modules) or 'none'} | "
        f"{_met(not ray_modules)} |",
        "",
        "## Throughput",
        "",
        "| replicas | requests | in flight | wall (s) | speech (s) | requests/min |",
        "|---|---|---|---|---|---|",
    ]
    for run in (one, two):
        lines.append(
            f"| {run['replicas']} | {run['requests']} | {run['in_flight']} | {run['wall_s']} | {run['audio_s']} | "
            f"{run['requests_per_minute']} |"
        )
    lines += [
        "",
        "Each request is one sentence of about 3 s of speech; every replica served two untimed",
        "requests first.",
    ]
    if busy:
        lines += [
            "",
            f"**The machine was shared while this ran (load average up to {max(loads)} on "
            f"{info['nproc']} cores): the ratio is not meaningful.** Two replicas can only go",
            "faster than one when the second core is free; here other processes held much of both,",
            "so the figure shows how the cores were shared. Rerun on an idle machine.",
        ]
    lines += [
        "",
        "## The Ray hop",
        "",
        f"An engine that answers at once with ready audio ({hop['utterance_s']} s at 22.05 kHz in three",
        "sentences, `bench/engine_workers/echo.py`) called in-process (median "
        f"{hop['in_process_p50_ms']} ms) and through a worker, {hop['repeats']} times each after",
        "five untimed calls: the difference is what routing, the streamed sentences' transfer and",
        "the client's checks cost per request.",
        "",
        "## Gateway memory",
        "",
        "A fresh process builds the gateway's engine from settings, loads it and synthesizes one",
        "sentence with the same voice profile:",
        "",
        "| mode | resident (MB) | peak (MB) | engine modules imported |",
        "|---|---|---|---|",
    ]
    for mode, label in (("ray", "`CLONEGATE_ENGINE=ray`"), ("embedded", "`CLONEGATE_ENGINE=embedded`")):
        found = memory[mode]
        lines.append(
            f"| {label} | {found['rss_mb']:.0f} | {found['peak_rss_mb']:.0f} | "
            f"{', '.join(found['engine_modules']) or 'none'} |"
        )
    lines += [
        "",
        "In Ray mode the gateway process holds the Ray driver (its core worker) and no engine: no",
        "Piper voice, no onnxruntime session, no WORLD analysis.",
        "",
    ]
    (folder / "engine_workers.md").write_text("\n".join(lines))
