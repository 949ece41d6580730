"""Writes the OpenAI API benchmark's JSON summary and markdown report."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from bench.run_info import commit


def _verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def write_report(summary: dict, folder: Path) -> None:
    summary = {  # a summary read back from its JSON keeps its own date and commit
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": commit("gateway", "bench/openai"),
        **summary,
    }
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "openai.json").write_text(json.dumps(summary, indent=2) + "\n")
    m, t, first, whole = summary["machine"], summary["targets"], summary["first_bytes_s"], summary["whole_s"]
    first_rows = "\n".join(
        f"| {name} | {v['mean']:.2f} | {v['median']:.2f} | {v['max']:.2f} |" for name, v in first.items()
    )
    whole_rows = "\n".join(
        f"| {name} | {v['mean']:.2f} | {summary['engine_s'][name]['mean']:.2f} | {v['max']:.2f} |"
        for name, v in whole.items()
    )
    pcm, native = first["pcm"]["mean"], first["native_wav"]["mean"]
    lines = [
        "# OpenAI speech API benchmark",
        "",
        f"- date: {summary['date']}, commit {summary['commit']}",
        f"- machine: {m['nproc']} CPUs, {m['cpu']}, Python {m['python']}; load average at start "
        f"{m['load_average_at_start']}, at end {summary['load_average_at_end']}",
        f"- command: `{summary['command']}`",
        "- set-up: `clonegate` app served by uvicorn on a loopback port, embedded engine, dev settings, SQLite;",
        "  requests with the official `openai` client; every audio response checked for its verified keyed payload",
        f"  (unmarked responses: {summary['unmarked_responses']}).",
        "",
        f"## First audio bytes of a streamed {summary['text_chars']}-character input (`stream_format=audio`)",
        "",
        "| format | mean s | median s | max s |",
        "|---|---|---|---|",
        first_rows,
        "",
        "`native_wav` is `POST /v1/synthesize?stream=true` with the same text, for comparison.",
        "",
        f"- pcm: mean {pcm:.2f} s — target ≤ {t['first_bytes_s_max']:.1f} s: {_verdict(pcm <= t['first_bytes_s_max'])}",
        f"- under the same load the native stream's first bytes took {native:.2f} s: the OpenAI stream's are "
        f"{pcm / native:.2f}× the native stream's. Both wait for the first chunk of sentences to be synthesized, "
        "marked and released; at a load average well above the core count every step takes several times its "
        "idle time, so a figure above the target from a loaded machine says little about an idle one.",
        "",
        f"## The same input whole, wav and mp3 ({summary['audio_s']:.1f} s of audio)",
        "",
        "| format | mean s end to end | engine s | max s |",
        "|---|---|---|---|",
        whole_rows,
        "",
        f"- what mp3 adds (encoder and the check of the mark in its bytes: end to end minus engine, mp3 against "
        f"wav, as a share of the wav request): {summary['mp3_over_wav'] * 100:.1f} % — target ≤ "
        f"{t['mp3_over_wav_max'] * 100:.0f} %: {_verdict(summary['mp3_over_wav'] <= t['mp3_over_wav_max'])}",
        f"- end to end, mp3 against wav: {summary['mp3_over_wav_end_to_end'] * 100:+.1f} % (includes the engine's "
        "own run-to-run variation)",
        "",
    ]
    (folder / "openai.md").write_text("\n".join(lines))
