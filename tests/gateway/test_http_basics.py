"""Probes, error shape, body limit, request ids and structured logs."""

from __future__ import annotations

import json
import logging

from fastapi import APIRouter
from fastapi.testclient import TestClient
from sqlalchemy import text

from gateway.app import create_app
from gateway.db import upgrade
from gateway.dependencies import SessionDep, gateway_of
from gateway.logs import JsonFormatter
from gateway.settings import Settings
from tests.gateway.synthesis_fixtures import seed_cohort


def test_healthz_answers(client):
    assert client.get("/healthz").json() == {"status": "ok"}


def test_readyz_waits_for_engine_and_blocklist(client, speech_dir):
    app = client.app
    assert gateway_of(app).components.executor.wait_ready(180)
    # Without a score-normalisation cohort the protected-speaker list cannot decide anything;
    # the answer says so and names the command that fixes it.
    response = client.get("/readyz")
    assert response.status_code == 503
    detail = response.json()["detail"]
    assert detail.startswith("not ready: blocklist. blocklist: ")
    assert "cohort" in detail and "`clonegate blocklist cohort add FILE...`" in detail
    seed_cohort(app, speech_dir)
    assert client.get("/readyz").json() == {"status": "ready"}


def test_readyz_not_ready_when_database_unreachable(tmp_path, loaded_models):
    settings = Settings(mode="dev", data_dir=tmp_path, database_url="postgresql+psycopg://nobody@127.0.0.1:1/none")
    with TestClient(create_app(settings, models=loaded_models)) as client:
        response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["error"] == "not_ready"
    assert "database" in response.json()["detail"]


def test_openapi_docs_served(client):
    assert client.get("/docs").status_code == 200
    assert "/healthz" in client.get("/openapi.json").json()["paths"]


def test_unknown_route_has_error_shape(client):
    response = client.get("/v1/nothing-here")
    assert response.status_code == 404
    assert response.json() == {"error": "not_found", "detail": "Not Found"}


def test_rejects_oversized_body_by_content_length(tmp_path, loaded_models):
    settings = Settings(mode="dev", data_dir=tmp_path, max_body_bytes=2048)
    with TestClient(create_app(settings, models=loaded_models)) as client:
        response = client.post("/v1/me", content=b"x" * 4096)
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"


def test_rejects_oversized_chunked_body(tmp_path, loaded_models):
    settings = Settings(mode="dev", data_dir=tmp_path, max_body_bytes=2048)

    def chunks():
        for _ in range(8):
            yield b"y" * 1024

    with TestClient(create_app(settings, models=loaded_models)) as client:
        response = client.post("/v1/me", content=chunks())
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"


def test_body_under_limit_reaches_the_route(tmp_path, loaded_models):
    settings = Settings(mode="dev", data_dir=tmp_path, max_body_bytes=2048)
    with TestClient(create_app(settings, models=loaded_models)) as client:
        # /v1/me is GET-only: a 405 shows the body passed the limit and reached routing.
        assert client.post("/v1/me", content=b"z" * 1024).status_code == 405


def test_every_response_carries_a_request_id(client):
    first = client.get("/healthz").headers["x-request-id"]
    second = client.get("/nothing").headers["x-request-id"]
    assert first and second and first != second


def test_caller_request_id_kept_only_when_harmless(client):
    assert (
        client.get("/healthz", headers={"X-Request-ID": "trace-12345678"}).headers["x-request-id"] == "trace-12345678"
    )
    injected = client.get("/healthz", headers={"X-Request-ID": "bad id\twith spaces"}).headers["x-request-id"]
    assert injected != "bad id\twith spaces"


def test_log_lines_are_json_with_request_id(client, caplog):
    with caplog.at_level(logging.INFO, logger="clonegate.http"):
        response = client.get("/healthz")
    record = next(r for r in caplog.records if r.name == "clonegate.http")
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "request"
    assert line["path"] == "/healthz"
    assert line["status"] == 200
    assert line["request_id"] is None or isinstance(line["request_id"], str)
    assert response.headers["x-request-id"]


def test_request_id_is_in_log_lines_written_during_the_request(client, caplog):
    seen = []

    class Capture(logging.Handler):
        def emit(self, record):
            seen.append(json.loads(JsonFormatter().format(record)))

    handler = Capture()
    logging.getLogger("clonegate.http").addHandler(handler)
    try:
        with caplog.at_level(logging.INFO, logger="clonegate.http"):
            response = client.get("/healthz", headers={"X-Request-ID": "req-abcdefgh"})
    finally:
        logging.getLogger("clonegate.http").removeHandler(handler)
    assert response.headers["x-request-id"] == "req-abcdefgh"
    assert [line["request_id"] for line in seen] == ["req-abcdefgh"]


def test_failed_commit_is_the_answer_never_a_2xx(tmp_path, loaded_models):
    """The request session commits before the response is sent: a commit that fails turns into
    the client's error answer instead of arriving after a 200 for work that was never stored."""
    settings = Settings(mode="dev", data_dir=tmp_path)
    upgrade(settings.resolved_database_url)
    app = create_app(settings, models=loaded_models)
    with gateway_of(app).db_engine.begin() as connection:
        connection.execute(text("CREATE TABLE parent (id INTEGER PRIMARY KEY)"))
        connection.execute(text("CREATE TABLE child (parent_id INTEGER REFERENCES parent (id))"))
    probe = APIRouter()

    @probe.post("/probe-write")
    def write(session: SessionDep) -> dict:
        # A deferred foreign key is only checked at COMMIT, after the handler has returned.
        session.execute(text("PRAGMA defer_foreign_keys = ON"))
        session.execute(text("INSERT INTO child VALUES (42)"))
        return {"ok": True}

    app.include_router(probe)
    with TestClient(app) as client:
        response = client.post("/probe-write")
    assert response.status_code == 503
    assert response.json()["error"] == "database_unavailable"
    with gateway_of(app).db_engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM child")).scalar() == 0
