"""The `clonegate` command: dev tokens, migrations, and a real `serve` process."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from gateway.auth import TokenVerifier
from gateway.settings import Settings
from gateway.startup_checks import latest_revision
from tests.gateway.conftest import free_port

CLONEGATE = [sys.executable, "-m", "gateway.cli"]
# How long the server may take, in CPU seconds it actually got (its own and its child processes'
# since it started): on a shared machine under load a wall-clock deadline fails a healthy server
# that is merely waiting for a core. A server that hangs uses no CPU and fails at the wall cap.
START_CPU_SECONDS = 60.0  # before /healthz answers
READY_CPU_SECONDS = 240.0  # before /readyz says ready
WALL_CAP_SECONDS = 900.0


def _stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a live process and its live descendants, from /proc (Linux);
    None where there is no /proc."""
    if _stat(pid) is None:
        return None
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))) is not None:
            parents[int(entry.name)] = int(fields[1])
    tree, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        for child, its_parent in parents.items():
            if its_parent == parent and child not in tree:
                tree.add(child)
                frontier.append(child)
    ticks = 0
    for member in tree:
        if (fields := _stat(member)) is not None:
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def _out_of_time(server: subprocess.Popen, *, cpu_budget: float, started: float) -> bool:
    used = _cpu_seconds(server.pid)
    elapsed = time.monotonic() - started
    if used is None:  # no /proc: the wall clock, at the budget's length, is all there is
        return elapsed > cpu_budget
    return used > cpu_budget or elapsed > WALL_CAP_SECONDS


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(CLONEGATE + args, env={**os.environ, **env}, capture_output=True, text=True, timeout=120)


def test_token_command_mints_a_token_the_gateway_accepts(tmp_path):
    result = _run(
        ["token", "--sub", "bob", "--role", "client", "--tenant", "acme", "--name", "Bob"],
        {"CLONEGATE_DATA_DIR": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr
    principal = TokenVerifier(Settings(data_dir=tmp_path)).verify(result.stdout.strip())
    assert (principal.subject, principal.tenant, principal.display_name) == ("bob", "acme", "Bob")
    assert [role.value for role in principal.roles] == ["client"]


def test_token_command_refuses_in_prod_mode(tmp_path):
    result = _run(
        ["token", "--sub", "bob", "--role", "admin"], {"CLONEGATE_MODE": "prod", "CLONEGATE_DATA_DIR": str(tmp_path)}
    )
    assert result.returncode == 2
    assert "prod" in result.stderr
    assert result.stdout == ""


def test_serve_refuses_prod_with_dev_secret_naming_the_setting(tmp_path):
    result = _run(["serve"], {"CLONEGATE_MODE": "prod", "CLONEGATE_DATA_DIR": str(tmp_path)})
    assert result.returncode == 2
    assert "CLONEGATE_JWT_SECRET" in result.stderr


def test_db_upgrade_in_prod_needs_only_the_database(tmp_path):
    """Step 2 of the runbook: a prod host migrates before its keys and identity provider exist."""
    url = f"sqlite:///{tmp_path / 'prod.db'}"
    result = _run(["db", "upgrade"], {"CLONEGATE_MODE": "prod", "CLONEGATE_DATABASE_URL": url})
    assert result.returncode == 0, result.stderr
    with sqlite3.connect(tmp_path / "prod.db") as database:
        assert database.execute("SELECT version_num FROM alembic_version").fetchone()[0] == latest_revision()


def test_serve_refuses_several_workers_on_sqlite(tmp_path):
    """SQLite has one writer: several replicas need PostgreSQL (several workers are run by the
    load-and-kill test, tests/gateway/test_load_and_kill.py)."""
    result = _run(["serve", "--workers", "2"], {"CLONEGATE_DATA_DIR": str(tmp_path)})
    assert result.returncode == 2
    assert "PostgreSQL" in result.stderr and "--workers" in result.stderr


def test_serve_answers_healthz_and_readyz(tmp_path, speech_dir):
    env = {"CLONEGATE_DATA_DIR": str(tmp_path / "data")}
    assert _run(["db", "upgrade"], env).returncode == 0
    cohort = sorted(str(path) for path in speech_dir.glob("de_*.wav"))[:6]
    seeded = _run(["blocklist", "cohort", "add", *cohort], env)
    assert seeded.returncode == 0, seeded.stderr
    assert "6 speaker(s) added" in seeded.stdout
    assert "0 speaker(s) added, 6 in total" in _run(["blocklist", "cohort", "add", *cohort], env).stdout
    port = free_port()
    server = subprocess.Popen(
        CLONEGATE + ["serve", "--port", str(port)],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        started = time.monotonic()
        while True:
            try:
                health = httpx.get(f"{base}/healthz", timeout=2)
                break
            except httpx.TransportError:
                if server.poll() is not None:
                    pytest.fail(f"server exited before answering: {server.stderr.read()}")
                if _out_of_time(server, cpu_budget=START_CPU_SECONDS, started=started):
                    pytest.fail(f"server did not answer within {START_CPU_SECONDS:.0f} CPU seconds")
                time.sleep(0.2)
        assert health.json() == {"status": "ok"}
        # Ready once the engine has loaded and warmed up in the background.
        started = time.monotonic()
        while (ready := httpx.get(f"{base}/readyz", timeout=30)).status_code == 503:
            assert ready.json()["error"] == "not_ready"
            assert not _out_of_time(server, cpu_budget=READY_CPU_SECONDS, started=started), ready.json()
            time.sleep(0.5)
        assert ready.json() == {"status": "ready"}
        assert health.headers["x-request-id"]
    finally:
        server.terminate()
        stdout, stderr = server.communicate(timeout=30)
    assert f"{base}/docs" in stdout
    assert '"request_id"' in stderr  # structured access log lines
    assert Path(tmp_path / "data" / "clonegate.db").exists()
