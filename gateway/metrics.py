"""Prometheus metrics: the families the gateway exports at `GET /metrics`, and their exposition.

Counters and histograms live in the process (prometheus-client's default registry). When several
gateway processes serve one port, each writes its values to files in `PROMETHEUS_MULTIPROC_DIR`
(it must be set, to an empty folder, before the processes start) and any of them answers
`/metrics` with the sum over all (prometheus-client's multiprocess mode). What the database knows
(audit pending count, integration lag, checkpoint age) is read when scraped, so every replica
reports the same value.

No label carries a tenant, subject, voice or request id: the label values are route templates,
status codes, error codes and step names, all fixed by the code.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from opentelemetry import trace
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import REGISTRY, Collector
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from audit.models import PendingEvent, StoredCheckpoint

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MULTIPROCESS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"

# A pipeline step takes milliseconds (text rules) to minutes (a long text on a CPU engine).
_STEP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)

HTTP_REQUESTS = Counter(
    "clonegate_http_requests",
    "HTTP requests answered, by route template, method, status, outcome (ok, refused: 4xx, failed: 5xx) and"
    " reason (the error code of the answer, 'ok' for a success)",
    ["route", "method", "status", "outcome", "reason"],
)
HTTP_DURATION = Histogram(
    "clonegate_http_request_duration_seconds",
    "Time from the request's arrival to the end of its answer, by route template",
    ["route", "method"],
    buckets=_STEP_BUCKETS,
)
PIPELINE_STEP = Histogram(
    "clonegate_pipeline_step_duration_seconds",
    "Seconds spent in each synthesis pipeline step (consent, voice, blocklist_references, text_rules,"
    " audit_admitted, engine, watermark, blocklist_output, encode, release)",
    ["step"],
    buckets=_STEP_BUCKETS,
)
ENGINE_IN_FLIGHT = Gauge(
    "clonegate_engine_jobs_in_flight",
    "Synthesis engine jobs admitted to the engine executor and not finished (running or waiting)",
    multiprocess_mode="livesum",
)
ENGINE_QUEUE_DEPTH = Gauge(
    "clonegate_engine_queue_depth",
    "Synthesis engine jobs waiting for a free engine slot",
    multiprocess_mode="livesum",
)
WATERMARK_SELF_CHECK_RETRIES = Counter(
    "clonegate_watermark_self_check_retries",
    "Watermark embeddings whose self-check failed and that were embedded again with other padding",
)
WATERMARK_SELF_CHECK_FAILURES = Counter(
    "clonegate_watermark_self_check_failures",
    "Outputs refused because no embedding passed the watermark self-check",
)
RATE_LIMITED = Counter(
    "clonegate_rate_limit_refusals",
    "Requests refused 429 by a rate limit or quota, by limit and by whose budget was spent (tenant or subject)",
    ["limit", "scope"],
)

_REASON = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


def outcome_of(status: int) -> str:
    if status >= 500:
        return "failed"
    if status >= 400:
        return "refused"
    return "ok"


def reason_label(code: object) -> str:
    """An error code as a label value; anything that does not look like one is 'other'."""
    return code if isinstance(code, str) and _REASON.match(code) else "other"


# OpenTelemetry's API ships with FastAPI; without an SDK and exporter configured in the process
# (e.g. by `opentelemetry-instrument`) its spans are no-ops costing microseconds.
_tracer = trace.get_tracer("clonegate.pipeline")


@contextmanager
def pipeline_step(name: str) -> Iterator[float]:
    """One synthesis step: a `pipeline.<name>` span, and its seconds in the step histogram."""
    started = time.perf_counter()
    with _tracer.start_as_current_span(f"pipeline.{name}"):
        try:
            yield started
        finally:
            PIPELINE_STEP.labels(name).observe(time.perf_counter() - started)


_engine_jobs_lock = threading.Lock()
_engine_jobs = 0


@contextmanager
def engine_job(*, max_concurrency: int) -> Iterator[None]:
    """Count a synthesis job in the engine gauges while it runs or waits for a slot."""
    global _engine_jobs
    with _engine_jobs_lock:
        _engine_jobs += 1
        ENGINE_IN_FLIGHT.inc()
        ENGINE_QUEUE_DEPTH.set(max(0, _engine_jobs - max_concurrency))
    try:
        yield
    finally:
        with _engine_jobs_lock:
            _engine_jobs -= 1
            ENGINE_IN_FLIGHT.dec()
            ENGINE_QUEUE_DEPTH.set(max(0, _engine_jobs - max_concurrency))


class AuditLogCollector(Collector):
    """The audit log's backlog, read from the database at each scrape (the same from every replica)."""

    def __init__(self, sessions: sessionmaker[Session], *, clock: Callable[[], datetime] | None = None) -> None:
        self._sessions = sessions
        self._clock = clock or (lambda: datetime.now(UTC))

    def collect(self) -> Iterable[Metric]:
        pending = GaugeMetricFamily(
            "clonegate_audit_pending_events", "Audit events appended and not yet integrated into the log"
        )
        lag = GaugeMetricFamily(
            "clonegate_audit_integration_lag_seconds",
            "Age of the oldest audit event not yet integrated (0 when none waits)",
        )
        age = GaugeMetricFamily(
            "clonegate_audit_checkpoint_age_seconds", "Seconds since the latest signed checkpoint was stored"
        )
        up = GaugeMetricFamily("clonegate_audit_store_readable", "1 when the figures above could be read")
        try:
            with self._sessions() as session:
                count, oldest = session.execute(
                    select(func.count(PendingEvent.id), func.min(PendingEvent.created_at))
                ).one()
                latest = session.scalar(select(func.max(StoredCheckpoint.created_at)))
        except SQLAlchemyError:
            up.add_metric([], 0)
            return [up]
        now = self._clock()
        pending.add_metric([], int(count))
        lag.add_metric([], max(0.0, (now - _aware(oldest)).total_seconds()) if oldest is not None else 0.0)
        up.add_metric([], 1)
        families = [pending, lag, up]
        if latest is not None:
            age.add_metric([], max(0.0, (now - _aware(latest)).total_seconds()))
            families.append(age)
        return families


def _aware(moment: datetime) -> datetime:
    # SQLite hands back naive values from an aggregate (the column type's decorator is not applied).
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


class MetricsExporter:
    """The `/metrics` text: this process's (or every worker's) families, then the database's."""

    def __init__(self, *, collectors: Iterable[Collector]) -> None:
        self._database = CollectorRegistry(auto_describe=False)
        for collector in collectors:
            self._database.register(collector)

    def render(self) -> bytes:
        return generate_latest(_process_registry()) + generate_latest(self._database)


def _process_registry() -> CollectorRegistry:
    if not os.environ.get(MULTIPROCESS_DIR_VARIABLE):
        return REGISTRY
    # prometheus-client's documented multiprocess pattern: a fresh registry per scrape that
    # reads every process's value files.
    _forget_dead_workers(os.environ[MULTIPROCESS_DIR_VARIABLE])
    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    return registry


_LIVE_GAUGE_FILE = re.compile(r"^gauge_live\w+_(\d+)\.db$")


def _forget_dead_workers(folder: str) -> None:
    """A worker that died (killed, restarted by the supervisor) leaves its live gauges' files;
    they would count its jobs in flight for ever. Counters and histograms keep its totals."""
    for name in os.listdir(folder):
        found = _LIVE_GAUGE_FILE.match(name)
        if found and not _running(int(found.group(1))):
            mark_process_dead(int(found.group(1)), folder)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True
