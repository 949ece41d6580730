"""Build a bundle of N events with the exporter's writer, then time the offline verifier on it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from audit.bundle import verify_bundle, write_bundle
from audit.canonical import canonical_json
from audit.checkpoint import Checkpoint, SigningKey, sign_checkpoint
from audit.events import Action, Actor, AuditEvent, Decision, Digests, EngineInfo, Subjects
from audit.merkle import CompactRange, leaf_hash

START = datetime(2026, 6, 1, tzinfo=UTC)
ACTIONS = [
    (Action.REQUEST_ADMITTED, Decision.ALLOW, None),
    (Action.REQUEST_RELEASED, Decision.ALLOW, None),
    (Action.REQUEST_DENIED, Decision.DENY, "consent_missing"),
]


def _entries(count: int):
    # A real event's dict, varied per index and canonicalized (what append_event stores).
    template = AuditEvent(
        action=Action.REQUEST_ADMITTED,
        decision=Decision.ALLOW,
        actor=Actor(iss="https://issuer.example", sub="client-0", role="client", tenant="tenant-0"),
        subjects=Subjects(voice_id="voice-0", consent_id="consent-0", request_id="r"),
        digests=Digests(text_sha256="ab" * 32, reference_sha256=("cd" * 32,), output_sha256="ef" * 32),
        engine=EngineInfo(name="piper-world", version="1.3.0"),
        watermark_id="wm-0",
    ).to_dict()
    for i in range(count):
        action, decision, reason = ACTIONS[i % 3]
        data = dict(template)
        data.update(
            event_id=str(uuid.UUID(int=i)),
            time=(START + timedelta(milliseconds=i)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            action=action.value,
            decision=decision.value,
            reason=reason,
            watermark_id=f"wm-{i}",
        )
        data["subjects"] = dict(template["subjects"], request_id=f"req-{i}", voice_id=f"voice-{i % 977}")
        yield canonical_json(data)


def build_bundle(directory: Path, count: int) -> tuple[Path, SigningKey, float]:
    key = SigningKey.generate(name="bench.clonegate.invalid/audit")
    entries_file = directory / "entries.bin"
    compact = CompactRange()
    started = time.perf_counter()
    with open(entries_file, "wb") as out:
        for entry in _entries(count):
            compact.append_fast(leaf_hash(entry))
            out.write(len(entry).to_bytes(4, "big") + entry)

    def lines():
        with open(entries_file, "rb") as source:
            for index in range(count):
                size = int.from_bytes(source.read(4), "big")
                yield index, source.read(size), None

    checkpoint = Checkpoint(key.name, count, compact.root())
    bundle = directory / "bundle"
    write_bundle(
        bundle,
        checkpoint_note=sign_checkpoint(checkpoint, key=key),
        checkpoint=checkpoint,
        verifier=key.verifier,
        lines=lines(),
        mode="full",
        created="2026-11-23T00:00:00Z",
    )
    entries_file.unlink()
    return bundle, key, time.perf_counter() - started


def time_verification(bundle: Path, key: SigningKey) -> dict:
    """Wall and CPU time of the verifier in-process (1 and 2 workers), and of the CLI process."""
    out: dict = {"bundle_mb": round(sum(path.stat().st_size for path in bundle.iterdir()) / 1e6, 1)}
    for workers in (1, 2):
        wall, cpu = time.perf_counter(), time.process_time()
        children = os.times()
        report = verify_bundle(bundle, trusted_key=key.verifier, workers=workers)
        after = os.times()
        out[f"verify_s_workers_{workers}"] = round(time.perf_counter() - wall, 2)
        out[f"verify_cpu_s_workers_{workers}"] = round(
            time.process_time()
            - cpu
            + (after.children_user - children.children_user)
            + (after.children_system - children.children_system),
            2,
        )
        out["events"] = report.event_count
    # Whole processes, start-up included: the light entry point and the full `clonegate` command.
    for name, module in (("verify_s_cli_light", "gateway.cli_audit"), ("verify_s_cli_clonegate", "gateway.cli")):
        prefix = [] if module == "gateway.cli_audit" else ["audit"]
        command = [sys.executable, "-m", module, *prefix, "verify", str(bundle), "--key", key.verifier.encode()]
        started = time.perf_counter()
        result = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "CLONEGATE_MODE": "dev"})
        out[name] = round(time.perf_counter() - started, 2)
        if result.returncode != 0:
            raise SystemExit(f"verification failed: {result.stderr}")
        out["cli_output"] = result.stdout.splitlines()[:3]
    return out
