"""A real gateway (`clonegate serve` under uvicorn on a loopback port) and Debian's Chromium
driven by Playwright, whose fake microphone plays a WAV file the test writes before it records.

One gateway and one browser serve every console test: starting the gateway costs minutes on
a small machine, and the flows build on each other (a voice enrolled by microphone is the one
synthesized, detected and revoked)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.gateway.conftest import free_port
from tests.gateway.speech import COHORT

CHROMIUM = os.environ.get("CLONEGATE_TEST_CHROMIUM", "/usr/bin/chromium")
START_TIMEOUT_S = 240
# Playwright waits: generous for a 2-core CI machine, still bounded.
UI_TIMEOUT_MS = 60_000


@dataclass
class RunningGateway:
    base_url: str
    data_dir: Path
    env: dict[str, str]

    def database_url(self) -> str:
        return f"sqlite:///{self.data_dir / 'clonegate.db'}"


def _clonegate(*args: str, env: dict[str, str]) -> None:
    subprocess.run([str(Path(sys.executable).parent / "clonegate"), *args], env=env, check=True, capture_output=True)


@pytest.fixture(scope="package")
def gateway(tmp_path_factory, speech_dir) -> Iterator[RunningGateway]:
    reuse = os.environ.get("CLONEGATE_TEST_CONSOLE_GATEWAY")
    if reuse:
        # While working on the console: a dev gateway already running, as "URL DATA_DIR".
        url, folder = reuse.split()
        yield RunningGateway(base_url=url, data_dir=Path(folder), env=dict(os.environ))
        return
    data_dir = tmp_path_factory.mktemp("console-gateway")
    port = free_port()
    env = {
        **os.environ,
        "CLONEGATE_MODE": "dev",
        "CLONEGATE_DATA_DIR": str(data_dir),
        "CLONEGATE_DETECT_ALLOW_ANONYMOUS": "true",
        "CLONEGATE_LOG_LEVEL": "WARNING",
    }
    _clonegate("db", "upgrade", env=env)
    _clonegate("blocklist", "cohort", "add", *(str(speech_dir / f"{name}.wav") for name in COHORT), env=env)
    log = (data_dir / "serve.log").open("w")
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "clonegate"), "serve", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(base_url, server, data_dir / "serve.log")
        yield RunningGateway(base_url=base_url, data_dir=data_dir, env=env)
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def _wait_ready(base_url: str, server: subprocess.Popen, log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"clonegate serve exited with {server.returncode}:\n{log_path.read_text()[-4000:]}")
        try:
            if httpx.get(f"{base_url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    pytest.fail(f"clonegate serve was not ready in {START_TIMEOUT_S} s:\n{log_path.read_text()[-4000:]}")


@dataclass
class Microphone:
    """The WAV file Chromium's fake capture device plays (read when a capture opens)."""

    path: Path

    def plays(self, wav: bytes) -> None:
        self.path.write_bytes(wav)


@pytest.fixture(scope="package")
def microphone(tmp_path_factory) -> Microphone:
    return Microphone(tmp_path_factory.mktemp("microphone") / "microphone.wav")


# Package scope: Playwright's sync API keeps an event loop running in this thread while it is
# open, and later tests (Ray handles, asyncio.run) refuse to run inside a running loop.
@pytest.fixture(scope="package")
def browser(microphone) -> Iterator:
    from playwright.sync_api import sync_playwright

    if not shutil.which(CHROMIUM):
        pytest.fail(f"no Chromium at {CHROMIUM}: ./bootstrap test installs Debian's chromium package")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
                # %noloop: the file plays once, then silence, as a person who stops talking.
                f"--use-file-for-fake-audio-capture={microphone.path}%noloop",
            ],
        )
        try:
            yield launched
        finally:
            launched.close()


def sign_in(page, *, subject: str, name: str, roles: tuple[str, ...], tenant: str = "") -> None:
    page.goto("/console/")
    page.wait_for_selector("body[data-ready=true]")
    if page.get_by_role("button", name="Sign out").count():
        page.get_by_role("button", name="Sign out").click()
    page.goto("/console/#/signin")
    page.get_by_label("Subject").fill(subject)
    page.get_by_label("Display name").fill(name)
    for role in ("owner", "client", "auditor", "admin"):
        page.get_by_role("checkbox", name=role).set_checked(role in roles)
    page.get_by_label("Tenant").fill(tenant)
    page.get_by_role("button", name="Sign in (dev)").click()
    page.get_by_role("button", name="Sign out").wait_for()
