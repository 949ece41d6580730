"""The console's files, read once at import: only these names are served, so no request path
ever reaches the file system."""

from __future__ import annotations

from pathlib import Path

STATIC_DIR = Path(__file__).parent / "static"
MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
# Every page must stay light enough to be interactive at once on a slow link (issue 15: <= 500 KB).
MAX_TOTAL_BYTES = 500 * 1024


def _load() -> dict[str, tuple[bytes, str]]:
    files = {}
    for path in sorted(STATIC_DIR.rglob("*")):
        if path.is_file() and path.suffix in MEDIA_TYPES:
            files[path.relative_to(STATIC_DIR).as_posix()] = (path.read_bytes(), MEDIA_TYPES[path.suffix])
    return files


ASSETS = _load()


def total_bytes() -> int:
    return sum(len(content) for content, _ in ASSETS.values())
