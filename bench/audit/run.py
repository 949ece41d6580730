"""Audit log benchmark: appends with 16 writers on PostgreSQL and SQLite, and offline
verification of a 1,000,000-event bundle. Writes docs/benchmarks/audit.md and audit.json.

    .venv/bin/python -m bench.audit.run [--duration 30] [--events 1000000] [--postgresql-only]

PostgreSQL runs twice: standalone appends group-committed by the process's `AuditAppender` (how
the gateway records an event that is a transaction of its own), and each append a session
transaction of its own (the earlier way). `--postgresql-only` reruns just those two and carries
the SQLite and verification figures over from the committed audit.json, saying so.

Run by hand, once; never as a test. Each backend gets a fresh, migrated database.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from bench.audit.appends import PostgresDatabase, run_appends
from bench.audit.verify import build_bundle, time_verification
from bench.run_info import commit, machine

REPO = Path(__file__).resolve().parents[2]
TARGETS = {"appends_per_s": 1000, "append_latency_ms_p99": 20, "inclusion_latency_s_p99": 2, "verify_1m_s": 20}


def postgres_version(admin_url: str) -> str:
    from sqlalchemy import create_engine, text

    engine = create_engine(admin_url)
    with engine.connect() as connection:
        version = connection.execute(text("SHOW server_version")).scalar()
        sync = connection.execute(text("SHOW synchronous_commit")).scalar()
    engine.dispose()
    return f"PostgreSQL {version} (synchronous_commit={sync})"


def verdict(value, target, *, lower_is_better: bool) -> str:
    if value is None:
        return "no data"
    met = value <= target if lower_is_better else value >= target
    return "met" if met else "MISSED"


def write_report(results: dict) -> None:
    out = REPO / "docs" / "benchmarks"
    out.mkdir(parents=True, exist_ok=True)
    (out / "audit.json").write_text(json.dumps(results, indent=2) + "\n")
    m = results["machine"]
    lines = [
        "# Audit log benchmark",
        "",
        f"- date: {results['date']}",
        f"- commit: {results['commit']}",
        f"- machine: {m['nproc']} CPUs, {m['cpu']}, Python {m['python']}; load average at start"
        f" {m['load_average_at_start']} (the machine is shared with other work)",
        f"- databases: {results['postgresql_version']}; SQLite {results['sqlite_version']} (WAL, synchronous=NORMAL)",
        f"- command: `{results['command']}`",
        "",
        "Writers: each append is a durable transaction of its own. *Group commit*: through the process's",
        "`AuditAppender` (the writers of one process share one multi-row INSERT in autocommit, one round trip and",
        "one WAL flush per batch), as the gateway records standalone events; *one transaction each*: a session,",
        "`append_event`, COMMIT (BEGIN, INSERT, COMMIT: three round trips and a WAL flush per append).",
        f"{results['writers']} writers in {results['writer_processes']} processes, the real integrator thread"
        f" running at a {results['checkpoint_interval_s']} s interval. Inclusion latency = commit of the append to the"
        " moment a signed checkpoint covering it is readable (polled every 20 ms).",
        "",
        "| figure | target | PostgreSQL, group commit | PostgreSQL, one transaction each | SQLite |",
        "|---|---|---|---|---|",
    ]
    pg, pg_each, lite = results["postgresql"], results["postgresql_transaction"], results["sqlite"]
    rows = [
        ("appends/s sustained (whole run)", "appends_per_s", ">= 1000", False, TARGETS["appends_per_s"]),
        ("appends/s, worst whole second", "appends_per_s_worst_second", "", False, None),
        ("append latency p50 (ms)", "append_latency_ms_p50", "", True, None),
        ("append latency p99 (ms)", "append_latency_ms_p99", "<= 20", True, TARGETS["append_latency_ms_p99"]),
        ("append to signed checkpoint p50 (s)", "inclusion_latency_s_p50", "", True, None),
        (
            "append to signed checkpoint p99 (s)",
            "inclusion_latency_s_p99",
            "<= 2",
            True,
            TARGETS["inclusion_latency_s_p99"],
        ),
        ("appends in the run", "appends", "", False, None),
        ("integrator round p50 (s)", "integrator_round_s_p50", "", True, None),
        ("integrator round max (s)", "integrator_round_s_max", "", True, None),
        ("events never seen in a checkpoint", "events_not_seen_in_a_checkpoint", "0", True, 0),
    ]
    for label, key, target_text, lower, target in rows:
        cells = []
        for result in (pg, pg_each, lite):
            value = result.get(key)
            mark = f" ({verdict(value, target, lower_is_better=lower)})" if target is not None else ""
            cells.append(f"{value}{mark}")
        lines.append(f"| {label} | {target_text} | {cells[0]} | {cells[1]} | {cells[2]} |")
    v = results["verification"]
    lines += [
        "",
        f"## Offline verification of a {v['events']:,}-event bundle",
        "",
        f"Bundle: {v['bundle_mb']} MB of `events.jsonl` (built with the exporter's writer in {v['build_s']:.0f} s).",
        "The verifier streams the file, checks every line's index and event shape, hashes each entry and folds the",
        "leaf hashes into a compact range, then compares the root with the Ed25519-signed checkpoint.",
        "",
        "| run | wall (s) | CPU (s) | target |",
        "|---|---|---|---|",
        f"| in-process, 1 worker | {v['verify_s_workers_1']} | {v['verify_cpu_s_workers_1']} | <= 20"
        f" ({verdict(v['verify_s_workers_1'], TARGETS['verify_1m_s'], lower_is_better=True)}) |",
        f"| in-process, 2 workers | {v['verify_s_workers_2']} | {v['verify_cpu_s_workers_2']} | <= 20"
        f" ({verdict(v['verify_s_workers_2'], TARGETS['verify_1m_s'], lower_is_better=True)}) |",
        f"| `python -m gateway.cli_audit verify` process (1 worker, start-up included) | {v['verify_s_cli_light']} | |"
        f" <= 20 ({verdict(v['verify_s_cli_light'], TARGETS['verify_1m_s'], lower_is_better=True)}) |",
        f"| `clonegate audit verify` process (1 worker, start-up of the whole CLI included) |"
        f" {v['verify_s_cli_clonegate']} | | <= 20"
        f" ({verdict(v['verify_s_cli_clonegate'], TARGETS['verify_1m_s'], lower_is_better=True)}) |",
        "",
        "CLI output:",
        "",
        "```",
        *v["cli_output"],
        "```",
        "",
        "## Notes",
        "",
        *results["notes"],
        "",
    ]
    (out / "audit.md").write_text("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--writers", type=int, default=16)
    parser.add_argument("--processes", type=int, default=4, help="writer processes sharing the writers")
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument(
        "--postgresql-only",
        action="store_true",
        help="rerun the PostgreSQL appends only; SQLite and verification figures come from the committed audit.json",
    )
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("CLONEGATE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"),
    )
    args = parser.parse_args()
    import sqlite3

    results = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit(),
        "machine": machine(),
        "command": "python -m bench.audit.run " + " ".join(sys.argv[1:]),
        "postgresql_version": postgres_version(args.postgres_url),
        "sqlite_version": sqlite3.sqlite_version,
        "writers": args.writers,
        "writer_processes": args.processes,
        "checkpoint_interval_s": args.interval,
        "targets": TARGETS,
    }
    for key, mode in (("postgresql", "appender"), ("postgresql_transaction", "transaction")):
        database = PostgresDatabase(args.postgres_url)
        try:
            print(f"PostgreSQL appends ({mode}) ...", flush=True)
            results[key] = run_appends(
                database.url,
                writers=args.writers,
                processes=args.processes,
                duration=args.duration,
                interval=args.interval,
                mode=mode,
            )
        finally:
            database.drop()
        print(json.dumps(results[key]), flush=True)
    carried = []
    if args.postgresql_only:
        earlier = json.loads((REPO / "docs" / "benchmarks" / "audit.json").read_text())
        results["sqlite"], results["verification"] = earlier["sqlite"], earlier["verification"]
        carried.append(
            f"- SQLite and the offline verification were not rerun: their figures are those of {earlier['date']}"
            f" (commit {earlier['commit']}), carried over from the earlier report."
        )
    else:
        _run_sqlite_and_verification(args, results)
    results["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    results["notes"] = [
        f"- Load average at the end: {results['machine']['load_average_at_end']}. Other engineers' work"
        " ran on the same 2 cores during this run, so every figure here is a contended one.",
        "- Inside a request, the append rides on the request's own transaction (one INSERT, its commit shared"
        " with the decision it records); only events that are a transaction of their own (a refusal recorded"
        " after the refused request's transaction rolled back) go through the appender.",
        "- The integrator runs in the benchmark's main process; its round time grows with the writers' CPU pressure.",
        "- The 1,000,000-event bundle is written by the exporter's `write_bundle` from generated events (real"
        " `AuditEvent` fields, canonical JSON), not exported from a database of a million rows.",
        *carried,
    ]
    write_report(results)
    print("wrote docs/benchmarks/audit.md and audit.json")


def _run_sqlite_and_verification(args: argparse.Namespace, results: dict) -> None:
    with tempfile.TemporaryDirectory() as folder:
        print("SQLite appends ...", flush=True)
        results["sqlite"] = run_appends(
            f"sqlite:///{folder}/bench.db",
            writers=args.writers,
            processes=args.processes,
            duration=args.duration,
            interval=args.interval,
        )
    print(json.dumps(results["sqlite"]), flush=True)
    with tempfile.TemporaryDirectory() as folder:
        print(f"building a {args.events}-event bundle ...", flush=True)
        bundle, key, build_s = build_bundle(Path(folder), args.events)
        print("verifying ...", flush=True)
        results["verification"] = {**time_verification(bundle, key), "build_s": round(build_s, 1)}
    print(json.dumps(results["verification"]), flush=True)


if __name__ == "__main__":
    main()
