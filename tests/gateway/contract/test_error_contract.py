"""The error contract: one body everywhere, documented as it is answered, bounded ids, 405 Allow,
unknown fields refused, and an unexpected error logged with its request id."""

from __future__ import annotations

import json
import logging
from typing import Annotated

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel

from gateway.auth import Permission, require
from gateway.dependencies import voices_service
from gateway.errors import error_responses
from gateway.logs import JsonFormatter
from gateway.openai_api.errors import OpenAIErrorShape
from gateway.openapi import install_openapi
from tests.gateway.conftest import bearer

PAST_64_BITS = 14461982119697665620003740712960  # the id the contract survey crashed SQLite with


def test_misspelt_body_field_is_refused_naming_it_not_ignored(client, hs256_token):
    """`output_format` is not `format`: answering WAV anyway would hide the caller's mistake."""
    body = {"voice_id": "v1", "text": "hello", "purpose": "ads", "output_format": "exe"}
    answer = client.post("/v1/synthesize", json=body, headers=bearer(hs256_token(role=["client"], tenant="acme")))
    assert answer.status_code == 422
    assert answer.json()["error"] == "invalid_request"
    assert "output_format" in answer.json()["detail"]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", f"/v1/blocklist/entries/{PAST_64_BITS}", None),
        ("POST", f"/v1/blocklist/entries/{PAST_64_BITS}/deactivate", {"reason": "r"}),
        ("POST", f"/v1/blocklist/entries/{PAST_64_BITS}/exceptions/revoke", {"voice_id": "a" * 32}),
        ("POST", f"/v1/blocklist/reviews/{PAST_64_BITS}/deny", {"note": "n"}),
        ("GET", f"/v1/audit/events/{PAST_64_BITS}/proof", None),
        ("GET", f"/v1/audit/events?after={PAST_64_BITS}", None),
    ],
)
def test_integer_overflow_id_is_refused_before_the_database(client, hs256_token, method, path, body):
    answer = client.request(method, path, json=body, headers=bearer(hs256_token(role=["admin"])))
    assert answer.status_code == 422
    assert answer.json()["error"] == "invalid_request"


def test_largest_storable_id_is_looked_up(client, hs256_token):
    answer = client.get(f"/v1/blocklist/entries/{2**63 - 1}", headers=bearer(hs256_token(role=["admin"])))
    assert answer.status_code == 404


def test_undeclared_method_answers_405_with_every_allowed_method(client):
    answer = client.request("TRACE", "/v1/voices/" + "a" * 32)
    assert answer.status_code == 405
    assert answer.json()["error"] == "method_not_allowed"
    assert {m.strip() for m in answer.headers["allow"].split(",")} >= {"GET", "DELETE"}


def test_unexpected_error_is_logged_with_its_request_id(client, hs256_token):
    def broken():
        raise RuntimeError("a bug")

    seen = []

    class Capture(logging.Handler):
        def emit(self, record):
            seen.append(json.loads(JsonFormatter().format(record)))

    handler = Capture()
    logger = logging.getLogger("clonegate.errors")
    logger.addHandler(handler)
    client.app.dependency_overrides[voices_service] = broken
    try:
        answer = TestClient(client.app, raise_server_exceptions=False).get(
            "/v1/voices", headers={**bearer(hs256_token(role=["owner"])), "X-Request-ID": "req-bug12345"}
        )
    finally:
        client.app.dependency_overrides.pop(voices_service)
        logger.removeHandler(handler)
    assert answer.status_code == 500
    assert answer.json() == {"error": "internal_error", "detail": "internal error"}
    assert answer.headers["x-request-id"] == "req-bug12345"
    unhandled = [line for line in seen if line["message"] == "unhandled error"]
    assert [line["request_id"] for line in unhandled] == ["req-bug12345"]
    assert "RuntimeError: a bug" in unhandled[0]["exception"]


def test_openapi_documents_every_error_as_the_body_the_route_answers(client):
    document = client.get("/openapi.json").json()
    assert "HTTPValidationError" not in document["components"]["schemas"]
    assert set(document["components"]["schemas"]["ErrorBody"]["properties"]) == {"error", "detail"}
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            errors = {status: r for status, r in operation["responses"].items() if int(status) >= 400}
            body = "OpenAIErrorBody" if OpenAIErrorShape().serves(path) else "ErrorBody"
            for status, response in errors.items():
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": f"#/components/schemas/{body}"}, (method, path, status)
                if body == "ErrorBody":  # ours: each status lists its codes, and a 500 is a bug, never an answer
                    assert response["x-error-codes"] and status != "500", (method, path, status)
            if operation.get("security"):
                assert "token_expired" in errors["401"]["x-error-codes"], (method, path)
            if operation.get("parameters") or operation.get("requestBody"):
                assert "invalid_request" in errors["422"]["x-error-codes"], (method, path)


class OtherShape(BaseModel):
    """Stands for the OpenAI-compatible routes' `{"error": {...}}` body."""

    error: dict[str, str]


def test_route_with_its_own_error_shape_keeps_it_for_every_status():
    app = FastAPI()

    @app.get("/own", responses=error_responses((404, "model_not_found"), model=OtherShape))
    def own(_: Annotated[object, require(Permission.READ_SELF)], limit: int = 1) -> dict[str, int]:
        return {"limit": limit}

    @app.get("/ours", responses=error_responses((404, "not_found")))
    def ours(_: Annotated[object, require(Permission.READ_SELF)]) -> dict[str, int]:
        return {}

    install_openapi(app)
    paths = app.openapi()["paths"]
    own_refs = {
        status: r["content"]["application/json"]["schema"]["$ref"]
        for status, r in paths["/own"]["get"]["responses"].items()
        if status != "200"
    }
    assert set(own_refs) == {"401", "403", "404", "422", "503"}
    assert set(own_refs.values()) == {"#/components/schemas/OtherShape"}
    assert "token_expired" in paths["/own"]["get"]["responses"]["401"]["x-error-codes"]
    ours_refs = {
        r["content"]["application/json"]["schema"]["$ref"]
        for status, r in paths["/ours"]["get"]["responses"].items()
        if status != "200"
    }
    assert ours_refs == {"#/components/schemas/ErrorBody"}


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/v1/audit/events?until=0.5", None),
        ("POST", "/v1/audit/exports", {"until": 0}),
        ("POST", "/v1/audit/exports", {"since": "1700000000"}),
    ],
)
def test_number_for_a_date_time_is_refused_not_read_as_unix_time(client, hs256_token, method, path, body):
    answer = client.request(method, path, json=body, headers=bearer(hs256_token(role=["auditor"])))
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"] == "invalid_request"


def test_string_for_an_integer_is_refused_not_coerced(client, hs256_token):
    body = {
        "grantee_kind": "tenant",
        "grantee_id": "acme",
        "grantee_name": "Acme",
        "purposes": ["ads"],
        "languages": ["en"],
        "not_after": "2030-01-01T00:00:00Z",
        "max_uses": "5",
    }
    answer = client.post("/v1/consent/challenges", json=body, headers=bearer(hs256_token(role=["owner"], name="Olive")))
    assert answer.status_code == 422, answer.text
    assert "max_uses" in answer.json()["detail"]
