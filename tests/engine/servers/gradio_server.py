"""Starts the Zonos-shaped app (``zonos_gradio_app.py``) under the real Gradio 5.15.0, in the
environment ``./bootstrap test`` builds for it under ``.cache/`` from ``gradio-requirements.lock``."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[2]
GRADIO_PYTHON = Path(
    os.environ.get(
        "CLONEGATE_TEST_GRADIO_PYTHON", REPO_ROOT / ".cache" / "test-servers" / "gradio-5.15.0" / "bin" / "python"
    )
)
START_TIMEOUT_S = 120


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class ZonosGradioServer:
    def __init__(self, workdir: Path) -> None:
        if not GRADIO_PYTHON.is_file():
            raise RuntimeError(f"no Gradio test environment at {GRADIO_PYTHON}: run ./bootstrap test to build it")
        self.call_log = workdir / "calls.jsonl"
        self.call_log.touch()
        self._log = (workdir / "gradio.log").open("wb")
        self.url = f"http://127.0.0.1:{_free_port()}"
        env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "GRADIO_TEMP_DIR": str(workdir / "gradio-files")}
        self._process = subprocess.Popen(
            [str(GRADIO_PYTHON), str(HERE / "zonos_gradio_app.py"), self.url.rsplit(":", 1)[1], str(self.call_log)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=workdir,
            start_new_session=True,
        )

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"the Gradio app exited with {self._process.returncode}; see {self._log.name}")
            try:
                if httpx.get(f"{self.url}/gradio_api/info", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"the Gradio app did not start within {START_TIMEOUT_S} s; see {self._log.name}")

    def calls(self) -> list[dict]:
        import json

        return [json.loads(line) for line in self.call_log.read_text().splitlines() if line]

    def stop(self) -> None:
        if self._process.poll() is None:
            os.killpg(self._process.pid, signal.SIGTERM)  # the session this server started, nothing else
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self._process.pid, signal.SIGKILL)
                self._process.wait(5)
        self._log.close()
