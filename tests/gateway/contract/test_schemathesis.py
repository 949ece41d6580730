"""The HTTP contract, checked by a client nobody here wrote: schemathesis (every check, every
phase, the stateful one included) against the gateway served by uvicorn on a loopback port, once
per role token, on SQLite and on PostgreSQL. Any failure schemathesis reports fails the test."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from gateway.app import create_app
from gateway.auth import Principal, Role
from gateway.dependencies import gateway_of
from gateway.dev_tokens import mint_dev_token
from gateway.settings import Settings
from tests.gateway.conftest import free_port
from tests.gateway.synthesis_fixtures import OWNER_ISSUER_SUB, grant_voice, seed_cohort

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
CONFIG = Path(__file__).parent / "schemathesis.toml"
# A fixed seed and deterministic generation: the same cases on every run, so a pass is not luck
# and a failure reproduces; the example count keeps a leg within minutes on a 2-core machine.
SEED = 20261202
MAX_EXAMPLES = 8
ROLES = {
    "owner": {"subject": OWNER_ISSUER_SUB, "roles": [Role.OWNER], "display_name": "Olive Owner"},
    "client": {"subject": "studio", "roles": [Role.CLIENT], "tenant": "acme"},
    "auditor": {"subject": "audrey", "roles": [Role.AUDITOR]},
    "admin": {"subject": "ada", "roles": [Role.ADMIN]},
}


@pytest.fixture
def served(migrated_database_url, tmp_path, loaded_models, speech_dir) -> Iterator[tuple[str, Settings]]:
    """The gateway on a loopback port, ready: the protected-speaker list has its cohort, so an
    answer a client gets is the route's, never a list that cannot decide."""
    settings = Settings(mode="dev", data_dir=tmp_path / "data", database_url=migrated_database_url)
    app = create_app(settings, models=loaded_models)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
            time.sleep(0.05)
        # Seeding prepares a voice with the engine, which answers only once its warm-up is done.
        assert gateway_of(app).components.executor.wait_ready(180), "the engine did not warm up"
        seed_cohort(app, speech_dir)
        _seed_resources(app, settings, speech_dir)
        base = f"http://127.0.0.1:{port}"
        _wait_ready(base, seconds=180)
        yield base, settings
    finally:
        server.should_exit = True
        thread.join(30)


def test_every_role_finds_the_contract_exact(served, tmp_path):
    base, settings = served
    found = {
        role: _schemathesis(base, mint_dev_token(settings, **claims), tmp_path / role) for role, claims in ROLES.items()
    }
    failing = {role: report for role, report in found.items() if report["failures"] or report["errors"]}
    assert not failing, json.dumps(failing, indent=1)[:20000]
    for role, report in found.items():
        assert report["operations_tested"] >= 30, (role, report)
        assert report["phases"]["stateful"] == "success", (role, report["phases"])


def _seed_resources(app, settings: Settings, speech_dir: Path) -> None:
    """Something for the stateful phase's links to follow: the owner's voice (granted to a tenant
    that is not the client's, so no generated request makes the engine speak) and a listed speaker."""
    clips = sorted(speech_dir.glob("en_*.wav"))
    grant_voice(app, clips[0], issuer=settings.jwt_issuer, tenant="another-studio")
    admin = Principal(
        issuer=settings.jwt_issuer,
        subject="ada",
        roles=frozenset({Role.ADMIN}),
        tenant=None,
        display_name=None,
        identity_verified=False,
    )
    gateway_of(app).services.blocklist.add_entry(
        principal=admin, name="Listed Speaker", reason="contract test", source="test", samples=[clips[-1].read_bytes()]
    )


def _schemathesis(base: str, token: str, workspace: Path) -> dict:
    workspace.mkdir()
    command = [
        str(SCHEMATHESIS),
        "--config-file",
        str(CONFIG),
        "run",
        f"{base}/openapi.json",
        "--header",
        f"Authorization: Bearer {token}",
        "--checks",
        "all",
        "--phases",
        "examples,coverage,fuzzing,stateful",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        str(SEED),
        "--generation-deterministic",
        "--workers",
        "1",
        "--no-color",
        "--report",
        "json",
        "--report-dir",
        str(workspace),
    ]
    done = subprocess.run(command, cwd=workspace, capture_output=True, text=True, timeout=900, check=False)
    (workspace / "schemathesis.log").write_text(done.stdout + done.stderr)  # every failure, reproducible
    reports = list(workspace.glob("json-*.json")) or list(workspace.glob("*.json"))
    assert reports, (
        f"schemathesis wrote no report (exit {done.returncode}):\n{done.stdout[-4000:]}{done.stderr[-4000:]}"
    )
    report = json.loads(reports[0].read_text())
    return {
        "exit": done.returncode,
        "failures": [
            {key: failure.get(key) for key in ("code", "title", "count", "operations")}
            for failure in report["failures"]
        ],
        "errors": report["errors"],
        "operations_tested": report["operations"]["tested"],
        "phases": {name: phase["status"] for name, phase in report["phases"].items()},
        "test_cases": report["test_cases"]["generated"],
        "output_tail": done.stdout[-6000:] if done.returncode else "",
    }


def _wait_ready(base: str, *, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(f"{base}/readyz", timeout=5) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        assert time.monotonic() < deadline, "the gateway did not become ready"
        time.sleep(0.5)
