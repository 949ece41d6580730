"""Background work tied to the app's lifetime (integrator, engine warm-up, list refresh)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI


def run_during_lifespan(app: FastAPI, *, start: Callable[[], None], stop: Callable[[], None]) -> None:
    """Call `start` when the app starts and `stop` when it stops, around the lifespan it had."""
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(running: FastAPI) -> AsyncIterator[Mapping[str, Any] | None]:
        start()
        try:
            async with inner(running) as state:
                yield state
        finally:
            stop()

    # Starlette types the context as returning None or a state mapping; the wrapper yields the inner one's.
    app.router.lifespan_context = lifespan  # type: ignore[assignment]
