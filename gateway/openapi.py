"""The OpenAPI document as the gateway answers: every error status with its `ErrorBody` codes.

FastAPI documents what a route declares and a validation error as its own `HTTPValidationError`
(`detail` a list). The gateway answers a validation error as `ErrorBody`
(gateway/errors.py), and dependencies (the caller, the session) add statuses of their own to
every route that uses them. This module writes both into the document FastAPI generates.

A route that answers another error shape (the OpenAI-compatible routes) declares one of its
error statuses with its own model (`error_responses(..., model=...)`); every status added to it
here then uses that model too.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.dependencies.utils import get_flat_params
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts

from gateway.errors import (
    ERROR_CODES_KEY,
    MALFORMED_BODY,
    VALIDATION_ERROR,
    ErrorBody,
    ErrorSource,
    dependency_errors,
    describe_codes,
    error_codes,
)

ERROR_BODY_REF = "#/components/schemas/ErrorBody"
FASTAPI_VALIDATION_REF = "#/components/schemas/HTTPValidationError"
# gateway/middleware.py answers an oversized body before any route runs.
BODY_TOO_LARGE = (413, "payload_too_large")
_FASTAPI_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_openapi(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to customise it


def build_openapi(app: FastAPI) -> dict[str, Any]:
    document = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes, tags=app.openapi_tags
    )
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas["ErrorBody"] = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
    for route in iter_route_contexts(app.routes):
        if not isinstance(route.original_route, APIRoute) or not route.include_in_schema:
            continue
        sources = _dependency_sources(route.dependant)
        if _validates_input(route):
            sources.append(VALIDATION_ERROR)
        if route.body_field is not None:
            sources += [BODY_TOO_LARGE, MALFORMED_BODY]
        for method in route.methods or ():
            operation = document["paths"].get(route.path_format, {}).get(method.lower())
            if operation is not None:
                _add_errors(operation, sources)
    for name in _FASTAPI_VALIDATION_SCHEMAS:
        if f'"#/components/schemas/{name}"' not in _referenced(document, skip=name):
            schemas.pop(name, None)
    return document


def _dependency_sources(dependant: Dependant) -> list[ErrorSource]:
    found: list[ErrorSource] = []
    for sub in dependant.dependencies:
        if sub.call is not None:
            found += dependency_errors(sub.call)
        found += _dependency_sources(sub)
    return found


def _validates_input(route: RouteContext) -> bool:
    return bool(get_flat_params(route.dependant)) or route.body_field is not None


def _add_errors(operation: dict[str, Any], sources: list[ErrorSource]) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    error_ref = _error_schema_of(responses)
    validation = responses.get("422")
    if validation is not None and _schema_ref(validation) == FASTAPI_VALIDATION_REF:
        responses["422"] = _error_response([], ref=error_ref)
    for status, codes in error_codes(*sources).items():
        response = responses.setdefault(str(status), _error_response([], ref=error_ref))
        merged = response.setdefault(ERROR_CODES_KEY, [])
        merged += [code for code in codes if code not in merged]
        response["description"] = describe_codes(merged)
    operation["responses"] = dict(sorted(responses.items()))


def _error_schema_of(responses: dict[str, Any]) -> str:
    """The error body a route answers: `ErrorBody`, unless it declares an error status with a
    model of its own (the OpenAI-compatible routes' shape); every status added here uses it."""
    for status, response in responses.items():
        ref = _schema_ref(response)
        if status.isdigit() and int(status) >= 400 and ref not in (None, FASTAPI_VALIDATION_REF):
            return ref
    return ERROR_BODY_REF


def _error_response(codes: list[str], *, ref: str) -> dict[str, Any]:
    return {
        "description": describe_codes(codes),
        "content": {"application/json": {"schema": {"$ref": ref}}},
        ERROR_CODES_KEY: codes,
    }


def _schema_ref(response: dict[str, Any]) -> str | None:
    schema = response.get("content", {}).get("application/json", {}).get("schema", {})
    ref = schema.get("$ref")
    return ref if isinstance(ref, str) else None


def _referenced(document: dict[str, Any], *, skip: str) -> str:
    trimmed = {**document, "components": {**document["components"]}}
    trimmed["components"]["schemas"] = {k: v for k, v in document["components"]["schemas"].items() if k != skip}
    return json.dumps(trimmed)
