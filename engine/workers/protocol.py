"""What crosses the Ray hop between the gateway's engine client and an engine worker.

Arguments and results are the engine interface's own dataclasses (Ray pickles them; numpy
arrays travel without copies). An engine error does not travel as an exception: the worker
sends a `WorkerFailure` with the error's code, and the client raises the `engine.errors` class
of that code, so a worker can never make the gateway raise something outside that hierarchy.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine import errors
from engine.interface import EngineDescription


@dataclass(frozen=True)
class WorkerInfo:
    """What the client needs before the first request: the engine as audit events name it, its
    languages, and the pause its ``synthesize`` puts between streamed sentences."""

    description: EngineDescription
    languages: frozenset[str]
    sentence_pause_s: float


@dataclass(frozen=True)
class WorkerFailure:
    code: str
    detail: str
    retry_after: int | None = None


def _error_classes() -> dict[str, type[errors.EngineError]]:
    found: dict[str, type[errors.EngineError]] = {}
    pending: list[type[errors.EngineError]] = [errors.EngineError]
    while pending:
        cls = pending.pop()
        found.setdefault(cls.code, cls)
        pending.extend(cls.__subclasses__())
    return found


ERROR_CLASSES = _error_classes()


def failure_of(exc: errors.EngineError) -> WorkerFailure:
    return WorkerFailure(code=exc.code, detail=str(exc), retry_after=getattr(exc, "retry_after", None))


def error_of(failure: WorkerFailure) -> errors.EngineError:
    """The engine error a worker reported; an unknown code is a failed request, not a pass."""
    cls = ERROR_CLASSES.get(failure.code)
    detail = f"engine worker: {failure.detail}"
    if cls is errors.EngineBusy:
        return errors.EngineBusy(detail, retry_after=max(1, failure.retry_after or 1))
    if cls is None or cls is errors.EngineError:
        return errors.EngineRequestFailed(f"engine worker failed ({failure.code}): {failure.detail}")
    return cls(detail)
