"""Load and fault benchmark: N replicas on PostgreSQL, C clients for S seconds, one replica killed
with SIGKILL mid-run and restarted, then the books checked (bench/load/harness.py).

    .venv/bin/python -m bench.load.run [--replicas 3] [--clients 8] [--seconds 180] [--kill-at 60]

Needs a PostgreSQL server (CLONEGATE_TEST_POSTGRES_URL, default the local one, database `test`);
makes a throw-away database on it and drops it afterwards. Writes docs/benchmarks/load.md and .json.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from bench.corpus import REPO_ROOT, speech_dir
from bench.load.harness import check, drive, dump, seed
from bench.run_info import commit, machine
from gateway.settings import Settings

POSTGRES_ADMIN_URL = os.environ.get("CLONEGATE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=180)
    parser.add_argument("--kill-at", type=float, default=60)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "docs" / "benchmarks")
    args = parser.parse_args(argv)

    started = machine()
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"clonegate_load_{uuid.uuid4().hex[:12]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        with tempfile.TemporaryDirectory() as folder:
            settings = Settings(
                mode="dev",
                data_dir=Path(folder) / "data",
                database_url=f"{POSTGRES_ADMIN_URL.rsplit('/', 1)[0]}/{name}",
            )
            seeded = seed(settings, speech_dir=speech_dir())
            run = drive(
                settings,
                seeded,
                replicas=args.replicas,
                clients=args.clients,
                seconds=args.seconds,
                kill_at=args.kill_at,
                port=args.port,
                log=Path(folder) / "serve.log",
            )
            result = check(settings, seeded, run)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    summary = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": commit("gateway", "bench/load"),
        "machine": {**started, "load_average_at_end": [round(x, 2) for x in os.getloadavg()]},
        "command": "python -m bench.load.run " + " ".join(argv or []),
        "replicas": args.replicas,
        "clients": args.clients,
        "seconds": args.seconds,
        "kill_at_s": args.kill_at,
        **result,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    dump(args.out / "load.json", summary)
    (args.out / "load.md").write_text(report(summary))
    print(report(summary))
    return 0 if not any(result["problems"].values()) else 1


def report(s: dict[str, Any]) -> str:
    m, lat = s["machine"], s["latency_s"]
    problems = "\n".join(
        f"| {name} | {count} | {'ok' if count == 0 else '**FAILED**'} |" for name, count in s["problems"].items()
    )
    return "\n".join(
        [
            "# Load and fault run",
            "",
            f"- date: {s['date']}, commit {s['commit']}",
            f"- machine: {m['nproc']} CPUs, {m['cpu']}, Python {m['python']}; load average at start "
            f"{m['load_average_at_start']}, at end {m['load_average_at_end']} (a shared machine: the figures are "
            "those of a loaded one)",
            f"- command: `{s['command']}`",
            f"- set-up: `clonegate serve --workers {s['replicas']}` (uvicorn's supervisor) on one PostgreSQL "
            f"database, embedded engine, dev settings; {s['clients']} clients in a loop of their own (httpx), each "
            f"sending a one-sentence synthesis request as soon as the last one answered, for {s['seconds']:.0f} s; "
            f"one worker (pid {s['killed_pid']}) killed with SIGKILL at {s['killed_at_s']} s and replaced by the "
            "supervisor; SIGTERM at the end.",
            "",
            "## What must hold",
            "",
            "| check | count | |",
            "|---|---|---|",
            problems,
            "",
            f"`clonegate audit check`: {s['audit_check']}",
            "",
            "## Figures",
            "",
            f"- requests: {s['requests']}; answers: {s['statuses']}",
            f"- errors by code: {s['errors']}"
            + (
                " (`rate_limited`: the default limit of 60 synthesis requests a minute per token subject refused"
                " them before admission, at no cost of a use: the throughput below is that limit, not the engines)"
                if "rate_limited" in s["errors"]
                else ""
            ),
            f"- admitted {s['admitted']}, released {s['released']}; outcomes {s['outcomes']}; abandoned by reason "
            f"{s['abandoned_reasons']}",
            f"- grant uses after the run: {s['grant_uses']} (= released requests)",
            f"- requests in flight when the worker was killed: {s['in_flight_at_kill']}; server errors or no answer: "
            f"{s['server_errors']}",
            f"- throughput: {s['throughput_per_s']} released requests/s",
            f"- latency of a 200 (s): p50 {lat['p50']}, p90 {lat['p90']}, p99 {lat['p99']}, max {lat['max']}",
            "",
        ]
    )


if __name__ == "__main__":
    raise SystemExit(main())
