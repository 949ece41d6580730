"""Writes the gateway benchmark's JSON summary and markdown report."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from bench.run_info import commit


def _verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def write_report(summary: dict, folder: Path) -> None:
    summary = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": commit("gateway", "bench/gateway"),
        **summary,
    }
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "gateway.json").write_text(json.dumps(summary, indent=2) + "\n")
    m, t = summary["machine"], summary["targets"]
    steps = "\n".join(f"| {name} | {seconds * 1000:.0f} |" for name, seconds in summary["steps_mean_s"].items())
    detect = summary["detect_latency_s"]
    throughput = summary["throughput"]
    perth, stream = summary["keyed_then_perth_stack"], summary["stream"]
    lines = [
        "# Gateway benchmark",
        "",
        f"- date: {summary['date']}, commit {summary['commit']}",
        f"- machine: {m['nproc']} CPUs, {m['cpu']}, Python {m['python']}; load average at start "
        f"{m['load_average_at_start']}",
        f"- command: `{summary['command']}`",
        "- set-up: `clonegate` app served by uvicorn on a loopback port, embedded engine, dev settings, SQLite;",
        "  requests over HTTP with httpx; step times from the response's Server-Timing header.",
        "",
        f"## A {summary['utterance_audio_s']:.1f} s utterance, end to end",
        "",
        "| step | mean ms |",
        "|---|---|",
        steps,
        "",
        f"- end to end: mean {summary['end_to_end_s']['mean']:.2f} s (max {summary['end_to_end_s']['max']:.2f} s), "
        f"engine {summary['engine_s']['mean']:.2f} s",
        f"- gateway overhead (everything but the engine, HTTP included): mean "
        f"{summary['overhead_s']['mean'] * 1000:.0f} ms, max {summary['overhead_s']['max'] * 1000:.0f} ms — target "
        f"≤ {t['overhead_s_max'] * 1000:.0f} ms: {_verdict(summary['overhead_s']['mean'] <= t['overhead_s_max'])}",
        f"- overhead share: {summary['overhead_share'] * 100:.1f} % — target ≤ {t['overhead_share_max'] * 100:.0f} %: "
        f"{_verdict(summary['overhead_share'] <= t['overhead_share_max'])}",
        "",
        f"- watermark step (default stack, the keyed layer alone): {summary['steps_mean_s']['watermark'] * 1000:.0f} ms "
        f"— target ≤ 100 ms: {_verdict(summary['steps_mean_s']['watermark'] <= 0.100)}",
        "",
        'With PerTh embedded after the keyed layer (`CLONEGATE_WATERMARK_SCHEMES=["keyed", "perth"]`), same requests:',
        "",
        f"- end to end: mean {perth['end_to_end_s']:.2f} s, engine {perth['engine_s']:.2f} s, watermark step "
        f"{perth['watermark_s'] * 1000:.0f} ms",
        f"- gateway overhead: mean {perth['overhead_s'] * 1000:.0f} ms "
        f"({_verdict(perth['overhead_s'] <= t['overhead_s_max'])}), share {perth['overhead_share'] * 100:.1f} % "
        f"({_verdict(perth['overhead_share'] <= t['overhead_share_max'])})",
        "",
        "## Streaming (`?stream=true`)",
        "",
        f"- a {stream['text_chars']}-character text, {stream['audio_s']:.1f} s of audio: first audio after "
        f"{stream['first_chunk_s']:.2f} s, whole stream {stream['total_s']:.2f} s",
        "",
        "## Throughput",
        "",
        f"- {throughput['clients']} concurrent clients, {throughput['requests']} requests in "
        f"{throughput['wall_s']:.1f} s: {throughput['requests_per_minute']:.1f} requests per minute",
        "",
        "## Detector",
        "",
        f"- 10 s clip: mean {detect['10s']['mean']:.2f} s, max {detect['10s']['max']:.2f} s — target ≤ "
        f"{t['detect_10s_s_max']:.0f} s: {_verdict(detect['10s']['mean'] <= t['detect_10s_s_max'])}",
        f"- 60 s clip: mean {detect['60s']['mean']:.2f} s, max {detect['60s']['max']:.2f} s",
        "",
        "## Marked outputs",
        "",
        f"- responses with audio: {summary['responses_with_audio']}; with unmarked audio: "
        f"{summary['responses_with_unmarked_audio']} — target 0: "
        f"{_verdict(summary['responses_with_unmarked_audio'] == 0)}",
        "",
    ]
    (folder / "gateway.md").write_text("\n".join(lines))
