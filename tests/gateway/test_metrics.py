"""`GET /metrics`: the families an operator scrapes, read back with prometheus-client's own parser."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta

import httpx
import uvicorn
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families

from audit.checkpoint import SigningKey
from audit.integrator import integrate_pending
from audit.store import append_event
from gateway import metrics
from gateway.app import create_app
from gateway.db import make_session_factory, upgrade
from gateway.logs import JsonFormatter
from gateway.metrics import MULTIPROCESS_DIR_VARIABLE, AuditLogCollector, MetricsExporter
from tests.audit.storage_helpers import ORIGIN, event
from tests.conftest import REPO_ROOT
from tests.gateway.conftest import bearer
from tests.gateway.synthesis_fixtures import PURPOSE, TEXT


def scrape(client) -> dict[str, list]:
    """Samples by family name, from the real exposition text."""
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {family.name: family.samples for family in text_string_to_metric_families(response.text)}


def value(samples, name: str, **labels) -> float:
    matching = [s.value for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]
    return sum(matching)


def test_a_synthesis_shows_in_every_family(gateway, client_token):
    client, _, voice = gateway
    before = scrape(client)
    response = client.post(
        "/v1/synthesize",
        json={"voice_id": voice.voice_id, "text": TEXT, "purpose": PURPOSE, "language": "en"},
        headers=bearer(client_token),
    )
    assert response.status_code == 200
    after = scrape(client)

    ok = {"route": "/v1/synthesize", "method": "POST", "status": "200", "outcome": "ok", "reason": "ok"}
    assert value(after["clonegate_http_requests"], "clonegate_http_requests_total", **ok) == (
        value(before.get("clonegate_http_requests", []), "clonegate_http_requests_total", **ok) + 1
    )
    steps = after["clonegate_pipeline_step_duration_seconds"]
    for step in ("consent", "text_rules", "audit_admitted", "engine", "watermark", "blocklist_output", "release"):
        count = value(steps, "clonegate_pipeline_step_duration_seconds_count", step=step)
        assert count >= 1, step
        assert value(steps, "clonegate_pipeline_step_duration_seconds_sum", step=step) > 0, step
    assert value(after["clonegate_engine_jobs_in_flight"], "clonegate_engine_jobs_in_flight") == 0
    assert value(after["clonegate_engine_queue_depth"], "clonegate_engine_queue_depth") == 0
    assert "clonegate_watermark_self_check_retries" in after
    assert "clonegate_rate_limit_refusals" in after
    # The admitted and released events exist, integrated or not: the backlog figures are read.
    assert value(after["clonegate_audit_store_readable"], "clonegate_audit_store_readable") == 1
    assert value(after["clonegate_audit_pending_events"], "clonegate_audit_pending_events") >= 0
    assert "clonegate_audit_integration_lag_seconds" in after


def test_refusals_are_counted_by_route_template_and_error_code(gateway, hs256_token):
    client, _, voice = gateway
    auditor = hs256_token(sub="auditor-1", role=["auditor"])
    before = scrape(client)
    for _ in range(2):
        refused = client.post(
            "/v1/synthesize",
            json={"voice_id": voice.voice_id, "text": TEXT, "purpose": PURPOSE, "language": "en"},
            headers=bearer(auditor),
        )
        assert refused.status_code == 403
    code = refused.json()["error"]
    missing = client.get(f"/v1/voices/{'ab' * 16}/nowhere")
    assert missing.status_code == 404
    after = scrape(client)

    denied = {"route": "/v1/synthesize", "status": "403", "outcome": "refused", "reason": code}
    assert value(after["clonegate_http_requests"], "clonegate_http_requests_total", **denied) == (
        value(before["clonegate_http_requests"], "clonegate_http_requests_total", **denied) + 2
    )
    # A path no route matched is one series, not one per path.
    routes = {sample.labels["route"] for sample in after["clonegate_http_requests"]}
    assert "unmatched" in routes
    assert not any(voice.voice_id in route or "ab" * 16 in route for route in routes)


def test_audit_backlog_is_read_from_the_database(db_engine):
    sessions = make_session_factory(db_engine)
    clock_now = datetime.now(UTC) + timedelta(seconds=30)
    exporter = MetricsExporter(collectors=[AuditLogCollector(sessions, clock=lambda: clock_now)])
    with sessions() as session:
        for index in range(3):
            append_event(session, event=event(index))
        session.commit()

    families = _parse(exporter.render())
    assert value(families["clonegate_audit_pending_events"], "clonegate_audit_pending_events") == 3
    assert value(families["clonegate_audit_integration_lag_seconds"], "clonegate_audit_integration_lag_seconds") >= 29
    assert "clonegate_audit_checkpoint_age_seconds" not in families  # nothing signed yet

    integrate_pending(sessions, key=SigningKey.generate(name=ORIGIN), origin=ORIGIN)
    families = _parse(exporter.render())
    assert value(families["clonegate_audit_pending_events"], "clonegate_audit_pending_events") == 0
    assert value(families["clonegate_audit_integration_lag_seconds"], "clonegate_audit_integration_lag_seconds") == 0
    assert value(families["clonegate_audit_checkpoint_age_seconds"], "clonegate_audit_checkpoint_age_seconds") >= 29


def test_counters_of_every_worker_process_are_summed(tmp_path, monkeypatch):
    """With several gateway processes, any one of them answers the sum over all of them."""
    monkeypatch.setenv(MULTIPROCESS_DIR_VARIABLE, str(tmp_path))
    count_two = (
        "from gateway.metrics import HTTP_REQUESTS\n"
        "HTTP_REQUESTS.labels('/v1/detect', 'POST', '429', 'refused', 'rate_limited').inc(2)\n"
    )
    for _ in range(2):
        subprocess.run([sys.executable, "-c", count_two], check=True, cwd=REPO_ROOT, env=dict(os.environ))
    families = _parse(MetricsExporter(collectors=[]).render())
    labels = {"route": "/v1/detect", "status": "429", "reason": "rate_limited"}
    assert value(families["clonegate_http_requests"], "clonegate_http_requests_total", **labels) == 4


def test_a_dead_workers_jobs_in_flight_are_not_counted(tmp_path, monkeypatch):
    """A worker killed mid-job leaves its live gauge behind; the sum is over living workers only."""
    monkeypatch.setenv(MULTIPROCESS_DIR_VARIABLE, str(tmp_path))
    die_in_a_job = (
        "import os\n"
        "from gateway.metrics import ENGINE_IN_FLIGHT\n"
        "ENGINE_IN_FLIGHT.inc(3)\n"
        "os._exit(0)\n"  # gone without any bookkeeping, as after SIGKILL
    )
    subprocess.run([sys.executable, "-c", die_in_a_job], check=True, cwd=REPO_ROOT, env=dict(os.environ))
    assert any(name.startswith("gauge_livesum_") for name in os.listdir(tmp_path))
    families = _parse(MetricsExporter(collectors=[]).render())
    assert value(families.get("clonegate_engine_jobs_in_flight", []), "clonegate_engine_jobs_in_flight") == 0
    assert not any(name.startswith("gauge_livesum_") for name in os.listdir(tmp_path))


def test_every_log_line_of_a_failing_request_carries_its_id(settings, loaded_models):
    """The route's own line, the unhandled-error line, the access line and the line the server
    writes about the escaping error all name the request they belong to (a real uvicorn)."""
    lines: list[dict] = []

    class Capture(logging.Handler):
        def emit(self, record):
            lines.append(json.loads(JsonFormatter().format(record)))

    def broken_route():
        logging.getLogger("clonegate.test").warning("about to fail")
        raise RuntimeError("a bug")

    upgrade(settings.resolved_database_url)
    app = create_app(settings, models=loaded_models)
    app.add_api_route("/broken-for-test", broken_route)
    handler = Capture(level=logging.INFO)
    root = logging.getLogger()
    previous_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    # As `clonegate serve` leaves them: an earlier uvicorn.run in this process with uvicorn's own
    # logging config stops its loggers from propagating.
    uvicorn_logger = logging.getLogger("uvicorn")
    previous_propagate = uvicorn_logger.propagate
    uvicorn_logger.propagate = True
    # log_config=None: uvicorn's own loggers propagate to the root logger, as `clonegate serve` sets them.
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    try:
        thread.start()
        while not server.started:
            time.sleep(0.02)
        port = server.servers[0].sockets[0].getsockname()[1]
        response = httpx.get(f"http://127.0.0.1:{port}/broken-for-test", headers={"X-Request-ID": "req-broken-1"})
    finally:
        server.should_exit = True
        thread.join(10)
        root.removeHandler(handler)
        root.setLevel(previous_level)
        uvicorn_logger.propagate = previous_propagate
    assert response.status_code == 500
    assert response.headers["x-request-id"] == "req-broken-1"
    during = [line for line in lines if line["request_id"] is not None or "Exception" in line["message"]]
    loggers = {line["logger"] for line in during}
    assert {"clonegate.test", "clonegate.errors", "clonegate.http", "uvicorn.error"} <= loggers, during
    assert all(line["request_id"] == "req-broken-1" for line in during), during


def _parse(text: bytes) -> dict[str, list]:
    return {family.name: family.samples for family in text_string_to_metric_families(text.decode())}


def test_each_pipeline_step_is_a_span_when_a_tracer_provider_is_configured(gateway, client_token, monkeypatch):
    """With an OpenTelemetry SDK and exporter configured (here an in-memory one), a synthesis
    leaves one span per pipeline step."""
    client, _, voice = gateway
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(metrics, "_tracer", provider.get_tracer("clonegate.pipeline"))
    response = client.post(
        "/v1/synthesize",
        json={"voice_id": voice.voice_id, "text": TEXT, "purpose": PURPOSE, "language": "en"},
        headers=bearer(client_token),
    )
    assert response.status_code == 200
    names = [span.name for span in exporter.get_finished_spans()]
    for step in ("consent", "text_rules", "audit_admitted", "engine", "watermark", "blocklist_output", "release"):
        assert f"pipeline.{step}" in names, names
