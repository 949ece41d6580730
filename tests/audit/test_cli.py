"""``clonegate audit export | verify | check`` on a SQLite data folder.

One test runs the real process end to end; the others call the same ``main`` in-process,
because each interpreter start costs seconds on the shared 2-core machine.
"""

from __future__ import annotations

import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
from sqlalchemy import text

from audit.integrator import integrate_pending
from gateway.cli import main
from gateway.db import create_db_engine, make_session_factory, upgrade
from gateway.keyfiles import audit_signing_key as load_audit_signing_key
from gateway.settings import Settings
from gateway.shared.transactions import commit_write_ahead
from tests.audit.storage_helpers import event

CLONEGATE = [sys.executable, "-m", "gateway.cli"]


def _process(args, data_dir):
    env = {**os.environ, "CLONEGATE_DATA_DIR": str(data_dir)}
    return subprocess.run(CLONEGATE + args, env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture
def _run(monkeypatch, capsys):
    def run(args, data_dir):
        monkeypatch.setenv("CLONEGATE_DATA_DIR", str(data_dir))
        code = main(args)
        captured = capsys.readouterr()
        return SimpleNamespace(returncode=code, stdout=captured.out, stderr=captured.err)

    return run


def _log_with_events(tmp_path, count: int):
    settings = Settings(data_dir=tmp_path / "data")
    upgrade(settings.resolved_database_url)
    key = load_audit_signing_key(settings)
    engine = create_db_engine(settings.resolved_database_url)
    sessions = make_session_factory(engine)
    with sessions() as session:
        for i in range(count):
            commit_write_ahead(session, event=event(i))
    integrate_pending(sessions, key=key, origin=key.name)
    return settings, sessions, engine


def test_export_verify_and_check_as_a_process(tmp_path):
    settings, _, engine = _log_with_events(tmp_path, 6)
    data = settings.data_dir
    key = load_audit_signing_key(settings).verifier.encode()
    exported = _process(["audit", "export", str(tmp_path / "bundle.tar")], data)
    assert exported.returncode == 0, exported.stderr
    checked = _process(["audit", "verify", str(tmp_path / "bundle.tar"), "--key", key], data)
    assert checked.returncode == 0, checked.stderr
    assert "all 6 events hash to the signed root" in checked.stdout
    light = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway.cli_audit",
            "verify",
            str(tmp_path / "bundle.tar"),
            "--key",
            key,
            "--workers",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert light.returncode == 0 and "all 6 events" in light.stdout, light.stderr
    engine.dispose()


def test_check_and_public_key(tmp_path, _run):
    settings, _, engine = _log_with_events(tmp_path, 6)
    assert _run(["audit", "public-key"], settings.data_dir).stdout.strip() == (
        load_audit_signing_key(settings).verifier.encode()
    )
    check = _run(["audit", "check"], settings.data_dir)
    assert check.returncode == 0 and "6 events" in check.stdout
    engine.dispose()


def test_verify_requires_a_trusted_key(tmp_path, _run):
    settings, _, engine = _log_with_events(tmp_path, 2)
    assert _run(["audit", "export", str(tmp_path / "b")], settings.data_dir).returncode == 0
    refused = _run(["audit", "verify", str(tmp_path / "b")], settings.data_dir)
    assert refused.returncode == 2 and "--key is required" in refused.stderr
    unsafe = _run(["audit", "verify", str(tmp_path / "b"), "--unsafe-trust-bundle-key"], settings.data_dir)
    assert unsafe.returncode == 0 and "UNSAFE" in unsafe.stderr
    engine.dispose()


def test_verify_reports_exactly_what_failed(tmp_path, _run):
    settings, _, engine = _log_with_events(tmp_path, 5)
    data = settings.data_dir
    key = _run(["audit", "public-key"], data).stdout.strip()
    _run(["audit", "export", str(tmp_path / "b")], data)
    kept = tmp_path / "b" / "checkpoint"
    lines = (tmp_path / "b" / "events.jsonl").read_bytes().splitlines(keepends=True)
    (tmp_path / "b" / "events.jsonl").write_bytes(b"".join(lines[:2] + lines[3:]))
    failed = _run(["audit", "verify", str(tmp_path / "b"), "--key", key, "--previous-checkpoint", str(kept)], data)
    assert failed.returncode == 1
    assert "FAILED audit_bundle_event_out_of_order" in failed.stderr and "expected 2" in failed.stderr
    engine.dispose()


def test_check_detects_an_edited_event(tmp_path, _run):
    settings, sessions, engine = _log_with_events(tmp_path, 5)
    with sessions() as session:
        session.execute(text("DROP TRIGGER audit_leaves_no_update"))
        session.execute(text("UPDATE audit_leaves SET entry = :e WHERE leaf_index = 3"), {"e": b"{}"})
        session.commit()
    failed = _run(["audit", "check"], settings.data_dir)
    assert failed.returncode == 1 and "leaf 3" in failed.stderr
    engine.dispose()
