"""What `/readyz` checks: named conditions that components register at start-up, each with what
to do when it fails, so that an operator can get to ready from the answer alone."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


class NotReady(Exception):
    """Raised by a check; the message says what is missing."""


@dataclass(frozen=True)
class Problem:
    check: str
    problem: str
    fix: str

    def sentence(self) -> str:
        return f"{self.check}: {self.problem}; to fix: {self.fix}"


@dataclass(frozen=True)
class _Check:
    probe: Callable[[], object]
    fix: str | Callable[[str], str]


class Readiness:
    def __init__(self) -> None:
        self._checks: dict[str, _Check] = {}

    def register(self, name: str, check: Callable[[], object], *, fix: str | Callable[[str], str]) -> None:
        """`check` returns true when satisfied; false, or an exception (whose message says what is
        missing), is not ready. `fix` says what to do, or makes that sentence from the message."""
        self._checks[name] = _Check(probe=check, fix=fix)

    def problems(self) -> list[Problem]:
        """The checks that are not satisfied now, in registration order."""
        problems = []
        for name, check in self._checks.items():
            try:
                ok, problem = bool(check.probe()), "not satisfied"
            except Exception as exc:
                ok, problem = False, str(exc) or type(exc).__name__
            if not ok:
                fix = check.fix(problem) if callable(check.fix) else check.fix
                problems.append(Problem(check=name, problem=problem, fix=fix))
        return problems

    def failing(self) -> list[str]:
        return [problem.check for problem in self.problems()]


def not_ready_detail(problems: list[Problem]) -> str:
    """`not ready: a, b. a: what; to fix: how. b: ...`: the names first, for a quick read."""
    names = ", ".join(problem.check for problem in problems)
    return f"not ready: {names}. " + " ".join(problem.sentence() + "." for problem in problems)
