"""The whole product over real HTTP: `clonegate serve` on a loopback port, driven with httpx.

An owner enrolls a voice with a spoken consent (the Piper voice reads the statement and the
references); a client synthesizes; the audio decodes and its mark verifies; /v1/detect resolves
it to the right audit event; a protected speaker is refused; revocation stops synthesis; an
auditor exports the log, `clonegate audit verify` passes on it and fails once a line is edited.
"""

from __future__ import annotations

import io
import os
import sqlite3
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import httpx
import pytest

from gateway.audio_io import decode_audio
from gateway.settings import Settings
from gateway.watermarking import build_watermark_stack
from tests.gateway.conftest import free_port
from tests.gateway.speech import PHRASES, REFERENCE_TEXT, spoken_wav

CLONEGATE = [sys.executable, "-m", "gateway.cli"]
TENANT = "acme"


class Gateway:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.env = {**os.environ, "CLONEGATE_DATA_DIR": str(data_dir)}
        self.base = f"http://127.0.0.1:{free_port()}"

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run(CLONEGATE + list(args), env=self.env, capture_output=True, text=True, timeout=300)
        if check and result.returncode != 0:
            raise AssertionError(f"clonegate {' '.join(args)} failed: {result.stderr}")
        return result

    def token(self, sub: str, role: str, *extra: str) -> dict[str, str]:
        return {"Authorization": "Bearer " + self.cli("token", "--sub", sub, "--role", role, *extra).stdout.strip()}

    def pin_phrase(self, challenge_id: str, phrase: tuple[str, ...]) -> None:
        """Swap the random phrase of an issued challenge, before its reveal, for one the recognizer
        reliably hears in this synthetic voice (docs/benchmarks/consent.md has the acceptance
        rate of random ones)."""
        with sqlite3.connect(self.data_dir / "clonegate.db") as database:
            old, statement = database.execute(
                "SELECT phrase, statement_text FROM consent_challenges WHERE id = ?", (challenge_id,)
            ).fetchone()
            pinned = statement.replace(old, " ".join(phrase))
            database.execute(
                "UPDATE consent_challenges SET phrase = ?, statement_text = ? WHERE id = ?",
                (" ".join(phrase), pinned, challenge_id),
            )


@pytest.fixture(scope="module")
def running(tmp_path_factory, speech_dir):
    gateway = Gateway(tmp_path_factory.mktemp("e2e") / "data")
    gateway.cli("db", "upgrade")
    gateway.cli("blocklist", "cohort", "add", *[str(p) for p in sorted(speech_dir.glob("de_*.wav"))[:6]])
    server = subprocess.Popen(
        CLONEGATE + ["serve", "--port", gateway.base.rsplit(":", 1)[1]],
        env=gateway.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 240
        while True:
            try:
                if httpx.get(f"{gateway.base}/readyz", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail("clonegate serve did not become ready")
            time.sleep(0.5)
        yield gateway
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_enroll_synthesize_detect_protect_revoke_export_verify(running, tmp_path):
    gateway, base = running, running.base
    owner = gateway.token("olive", "owner", "--name", "Olive Owner")
    client = gateway.token("studio", "client", "--tenant", TENANT)
    auditor = gateway.token("audrey", "auditor")
    admin = gateway.token("ada", "admin")

    # An owner asks for a challenge, starts recording (the words are revealed) and reads it.
    challenge = httpx.post(
        f"{base}/v1/consent/challenges",
        headers=owner,
        json={
            "grantee_kind": "tenant",
            "grantee_id": TENANT,
            "grantee_name": "Acme Audio",
            "purposes": ["narration"],
            "languages": ["en"],
            "not_after": "2030-01-01T00:00:00Z",
            "max_uses": 10,
        },
        timeout=60,
    )
    assert challenge.status_code == 201, challenge.text
    challenge = challenge.json()
    assert "My confirmation words are" in challenge["statement_preview"] and "phrase" not in challenge
    gateway.pin_phrase(challenge["challenge_id"], PHRASES[0])
    revealed = httpx.post(f"{base}/v1/consent/challenges/{challenge['challenge_id']}/reveal", headers=owner, timeout=60)
    assert revealed.status_code == 200 and tuple(revealed.json()["phrase"]) == PHRASES[0], revealed.text
    statement = revealed.json()["statement"]
    enrolled = httpx.post(
        f"{base}/v1/voices",
        headers=owner,
        timeout=300,
        data={"challenge_id": challenge["challenge_id"]},
        files=[
            ("consent_recording", ("consent.wav", spoken_wav(statement), "audio/wav")),
            ("references", ("reference.wav", spoken_wav(REFERENCE_TEXT), "audio/wav")),
        ],
    )
    assert enrolled.status_code == 201, enrolled.text
    voice_id, consent_id = enrolled.json()["voice_id"], enrolled.json()["consent_id"]

    # A client of the granted tenant synthesizes; the audio carries a verifiable mark.
    request = {
        "voice_id": voice_id,
        "text": "Welcome to the harbour museum. The tour starts in five minutes.",
        "language": "en",
        "purpose": "narration",
        "format": "wav",
    }
    released = httpx.post(f"{base}/v1/synthesize", headers=client, json=request, timeout=300)
    assert released.status_code == 200, released.text
    audit_id = int(released.headers["x-clonegate-audit-id"])
    audio = decode_audio(released.content)
    stack = build_watermark_stack(Settings(data_dir=gateway.data_dir))
    keyed = stack.detect(audio.samples, sample_rate=audio.sample_rate).scheme("keyed")
    assert keyed.payload_verified and int.from_bytes(keyed.payload, "big") == audit_id

    # The detector resolves it to the admitted event of that request.
    detected = httpx.post(
        f"{base}/v1/detect",
        headers=client,
        timeout=120,
        files={"audio": ("suspect.wav", released.content, "audio/wav")},
    ).json()
    assert detected["source"]["status"] == "resolved"
    assert detected["source"]["audit_id"] == audit_id
    assert detected["source"]["event"]["subjects"]["voice_id"] == voice_id

    # Once the voice is on the protected-speaker list, nobody synthesizes with it.
    entry = httpx.post(
        f"{base}/v1/blocklist/entries",
        headers=admin,
        timeout=120,
        data={"name": "Olive Owner", "reason": "public figure", "source": "e2e test"},
        files=[("samples", ("sample.wav", spoken_wav(REFERENCE_TEXT), "audio/wav"))],
    )
    assert entry.status_code == 201, entry.text
    deadline = time.monotonic() + 10  # the list is polled; a change is seen within 5 s
    while (
        refused := httpx.post(f"{base}/v1/synthesize", headers=client, json=request, timeout=300)
    ).status_code == 200:
        assert time.monotonic() < deadline, "the protected speaker was still cloned"
        time.sleep(1)
    assert refused.status_code == 403 and refused.json()["error"] == "speaker_protected"
    deactivated = httpx.post(
        f"{base}/v1/blocklist/entries/{entry.json()['entry_id']}/deactivate",
        headers=admin,
        json={"reason": "test over"},
        timeout=60,
    )
    assert deactivated.status_code == 200, deactivated.text

    # The owner revokes; synthesis stops.
    assert httpx.post(f"{base}/v1/consents/{consent_id}/revoke", headers=owner, timeout=60).status_code == 200
    revoked = httpx.post(f"{base}/v1/synthesize", headers=client, json=request, timeout=300)
    assert revoked.status_code == 403 and revoked.json()["error"] == "consent_revoked"

    # An auditor exports the log; it verifies offline, and fails once one line is edited.
    time.sleep(2)  # let the integrator sign a checkpoint over the latest events
    export = httpx.post(f"{base}/v1/audit/exports", headers=auditor, json={}, timeout=300)
    assert export.status_code == 200, export.text
    bundle = tmp_path / "bundle.tar"
    bundle.write_bytes(export.content)
    public_key = httpx.get(f"{base}/v1/audit/public-key", timeout=30).text.strip()
    verified = gateway.cli("audit", "verify", str(bundle), "--key", public_key, check=False)
    assert verified.returncode == 0, verified.stderr
    assert "OK" in verified.stdout

    edited = tmp_path / "edited.tar"
    with tarfile.open(bundle) as source, tarfile.open(edited, "w") as target:
        for member in source.getmembers():
            data = source.extractfile(member).read()
            if member.name.endswith("events.jsonl"):
                data = data.replace(b"request.released", b"request.admitted", 1)
                assert data != source.extractfile(member).read()
            member.size = len(data)
            target.addfile(member, io.BytesIO(data))
    tampered = gateway.cli("audit", "verify", str(edited), "--key", public_key, check=False)
    assert tampered.returncode != 0
    assert "FAILED" in tampered.stderr

    # The owner erases the voice; the log still checks out end to end.
    erased = httpx.delete(f"{base}/v1/voices/{voice_id}", headers=owner, timeout=120)
    assert erased.status_code == 200, erased.text
    checked = gateway.cli("audit", "check", check=False)
    assert checked.returncode == 0, checked.stderr
