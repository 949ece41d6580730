"""HTTP contract survey: what a client nobody here wrote finds, and how the route code is shaped.

Starts the gateway the way `./bootstrap serve` does (`clonegate db upgrade`, the dev cohort,
`clonegate serve`, here in a temporary data folder on a free loopback port) and runs
schemathesis (`--checks all`, every phase) once per role with a dev token from
`clonegate token`. It counts the failures of each kind from schemathesis' JSON report, and
measures the tree: route handlers, their length, how many declare a response model, and how
often route modules read `app.state` or commit by hand.

The run is recorded under a label (`--label before`, `--label after`) in
docs/benchmarks/api_contract.json, and the markdown report shows every recorded run, each with
its own date, commit, machine and command.

    .venv/bin/python -m bench.api_contract.run --label after [--seed 1]
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

from bench.corpus import REPO_ROOT, speech_dir
from bench.run_info import commit, machine

VENV_BIN = Path(sys.executable).parent
# The command of the gateway this interpreter imports (`clonegate` itself, run as a module).
CLONEGATE = [sys.executable, "-m", "gateway.cli"]
REPORT_DIR = REPO_ROOT / "docs" / "benchmarks"
ROLES = {
    "owner": ["--sub", "olive", "--role", "owner", "--name", "Olive Owner"],
    "client": ["--sub", "studio", "--role", "client", "--tenant", "acme"],
    "auditor": ["--sub", "audrey", "--role", "auditor"],
    "admin": ["--sub", "ada", "--role", "admin"],
}
# schemathesis failure codes, named as the issue counts them
FAILURE_KINDS = {
    "ST101": "server_errors",
    "ST103": "undocumented_statuses",
    "ST108": "schema_violations",
    "ST202": "rejected_valid_requests",
    "ST204": "wrong_undeclared_method",
}
ROUTE_DECORATORS = {"get", "post", "put", "patch", "delete", "head", "options", "api_route"}
HANDLER_MAX_LINES = 25


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def clonegate(*args: str, env: dict[str, str]) -> str:
    done = subprocess.run(CLONEGATE + list(args), env=env, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def wait_ready(base: str, *, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{base}/readyz", timeout=5) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(1)
    raise SystemExit(f"the gateway at {base} did not become ready in {seconds:.0f} s")


def run_schemathesis(base: str, token: str, *, report_dir: Path, seed: int | None) -> dict:
    command = [
        str(VENV_BIN / "schemathesis"),
        "run",
        f"{base}/openapi.json",
        "-H",
        f"Authorization: Bearer {token}",
        "--checks",
        "all",
        "--report",
        "json",
        "--report-dir",
        str(report_dir),
    ]
    if seed is not None:
        command += ["--seed", str(seed)]
    subprocess.run(command, cwd=report_dir.parent, capture_output=True, text=True, check=False)
    report = json.loads(next(report_dir.glob("json-*.json")).read_text())
    counts = dict.fromkeys(FAILURE_KINDS.values(), 0)
    other = 0
    operations: dict[str, list[str]] = {}
    for failure in report["failures"]:
        kind = FAILURE_KINDS.get(failure["code"])
        if kind is None:
            other += failure["count"]
            kind = f"{failure['code']} {failure['title']}"
        else:
            counts[kind] += failure["count"]
        operations[kind] = failure["operations"]
    return {
        **counts,
        "other_failures": other,
        "errors": len(report["errors"]),
        "test_cases": report["test_cases"]["generated"],
        "operations_tested": report["operations"]["tested"],
        "phases": {name: phase["status"] for name, phase in report["phases"].items()},
        "seed": report["seed"],
        "failing_operations": operations,
    }


def survey_contract(seed: int | None) -> dict:
    """Every role's schemathesis findings against a gateway started as `./bootstrap serve` does."""
    with tempfile.TemporaryDirectory(prefix="api-contract-") as workspace:
        root = Path(workspace)
        port = free_port()
        env = {**os.environ, "CLONEGATE_DATA_DIR": str(root / "data"), "CLONEGATE_PORT": str(port)}
        env.pop("CLONEGATE_DATABASE_URL", None)
        clonegate("db", "upgrade", env=env)
        cohort = [str(path) for path in sorted(speech_dir().glob("de_*.wav")) if path.stem != "de_Elli"]
        clonegate("blocklist", "cohort", "add", *cohort, env=env)
        server = subprocess.Popen(
            [*CLONEGATE, "serve"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=(root / "serve.log").open("w"),
        )
        try:
            base = f"http://127.0.0.1:{port}"
            wait_ready(base, seconds=300)
            roles = {}
            for role, token_args in ROLES.items():
                token = clonegate("token", *token_args, env=env)
                report_dir = root / f"report-{role}"
                roles[role] = run_schemathesis(base, token, report_dir=report_dir, seed=seed)
                print(role, {k: v for k, v in roles[role].items() if k in FAILURE_KINDS.values()}, flush=True)
        finally:
            server.terminate()
            server.wait(timeout=60)
        server_log = (root / "serve.log").read_text()
    unhandled = [line for line in server_log.splitlines() if '"unhandled error"' in line]
    return {
        "roles": roles,
        "unhandled_errors_logged": len(unhandled),
        "unhandled_errors_without_request_id": sum('"request_id": null' in line for line in unhandled),
    }


def _is_route(decorator: ast.expr) -> bool:
    return (
        isinstance(decorator, ast.Call)
        and isinstance(decorator.func, ast.Attribute)
        and decorator.func.attr in ROUTE_DECORATORS
    )


def _declares_response_model(decorator: ast.Call, handler: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    # A file, audio or text answer is declared by its response class (and media type) instead.
    if any(keyword.arg in {"response_model", "response_class"} for keyword in decorator.keywords):
        return True
    # FastAPI takes the return annotation as the response model unless it is a Response.
    returns = handler.returns
    if returns is None:
        return False
    name = ast.unparse(returns)
    return name not in {"dict", "list", "Any", "None"} and not name.endswith("Response") and "dict[" not in name


def survey_code(package: Path) -> dict:
    """Route handlers and what route modules do that a service should do instead."""
    handlers = []
    app_state_reads = 0
    manual_commits = 0
    route_modules = []
    for path in sorted(package.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        found = []
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                routes = [d for d in node.decorator_list if _is_route(d)]
                if routes:
                    lines = node.end_lineno - node.lineno + 1
                    found.append(
                        {
                            "handler": f"{path.relative_to(REPO_ROOT)}:{node.name}",
                            "lines": lines,
                            "response_model": _declares_response_model(routes[0], node),
                        }
                    )
        if not found:
            continue
        route_modules.append(str(path.relative_to(REPO_ROOT)))
        handlers += found
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and node.attr == "state"
                and (
                    (isinstance(node.value, ast.Attribute) and node.value.attr == "app")
                    or (isinstance(node.value, ast.Name) and node.value.id == "app")
                )
            ):
                app_state_reads += 1
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "commit":
                manual_commits += 1
    long = sorted((h for h in handlers if h["lines"] > HANDLER_MAX_LINES), key=lambda h: -h["lines"])
    return {
        "route_modules": route_modules,
        "handlers": len(handlers),
        "handlers_over_25_lines": len(long),
        "longest_handlers": [f"{h['handler']} ({h['lines']})" for h in long],
        "handlers_without_response_model": sum(not h["response_model"] for h in handlers),
        "app_state_reads_in_route_modules": app_state_reads,
        "manual_commits_in_route_modules": manual_commits,
    }


def write_report(runs: dict) -> None:
    (REPORT_DIR / "api_contract.json").write_text(json.dumps(runs, indent=2) + "\n")
    kinds = list(FAILURE_KINDS.values())
    lines = [
        "# HTTP contract survey",
        "",
        "schemathesis (`--checks all`, every phase, one run per role token from `clonegate token`) against a",
        "gateway started as `./bootstrap serve` starts it, and counts measured on the route code.",
        "`bench/api_contract/run.py` writes this file; each run below names its own date, commit and machine.",
        "",
    ]
    for label, run in runs.items():
        m, code = run["machine"], run["code"]
        lines += [
            f"## {label}",
            "",
            f"- date: {run['date']}, commit {run['commit']}",
            f"- machine: {m['nproc']} CPUs, {m['cpu']}, Python {m['python']}; load average at start "
            f"{m['load_average_at_start']}",
            f"- command: `{run['command']}`",
            "",
            "| role | " + " | ".join(kinds) + " | other | test cases |",
            "|---|" + "---|" * (len(kinds) + 2),
        ]
        for role, found in run["contract"]["roles"].items():
            cells = " | ".join(str(found[kind]) for kind in kinds)
            lines.append(f"| {role} | {cells} | {found['other_failures']} | {found['test_cases']} |")
        lines += [
            "",
            f"- unhandled errors logged by the server: {run['contract']['unhandled_errors_logged']} "
            f"({run['contract']['unhandled_errors_without_request_id']} without a request id)",
            f"- route handlers: {code['handlers']} in {len(code['route_modules'])} modules; over "
            f"{HANDLER_MAX_LINES} lines: {code['handlers_over_25_lines']}; without a response model: "
            f"{code['handlers_without_response_model']}",
            f"- `app.state` reads in route modules: {code['app_state_reads_in_route_modules']}; hand-written "
            f"commits in route modules: {code['manual_commits_in_route_modules']}",
        ]
        if code["longest_handlers"]:
            lines.append("- handlers over the limit: " + ", ".join(f"`{h}`" for h in code["longest_handlers"]))
        lines.append("")
    (REPORT_DIR / "api_contract.md").write_text("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--label", required=True, help="the name this run is recorded under (before, after)")
    parser.add_argument("--seed", type=int, default=None, help="schemathesis' seed (default: random)")
    args = parser.parse_args()
    started = machine()
    run = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": commit("gateway"),
        "machine": started,
        "command": "python -m bench.api_contract.run " + " ".join(sys.argv[1:]),
        "code": survey_code(REPO_ROOT / "gateway"),
        "contract": survey_contract(args.seed),
    }
    path = REPORT_DIR / "api_contract.json"
    runs = json.loads(path.read_text()) if path.exists() else {}
    runs[args.label] = run
    write_report(runs)
    print(f"wrote {REPORT_DIR / 'api_contract.md'}")


if __name__ == "__main__":
    main()
