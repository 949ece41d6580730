"""What `/readyz` checks: named conditions that components register at start-up."""

from __future__ import annotations

from collections.abc import Callable


class Readiness:
    def __init__(self) -> None:
        self._checks: dict[str, Callable[[], bool]] = {}

    def register(self, name: str, check: Callable[[], bool]) -> None:
        self._checks[name] = check

    def failing(self) -> list[str]:
        """Names of the checks that are not satisfied now; a check that raises is failing."""
        failing = []
        for name, check in self._checks.items():
            try:
                ok = check()
            except Exception:
                ok = False
            if not ok:
                failing.append(name)
        return failing
