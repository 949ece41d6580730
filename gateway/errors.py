"""The one place where errors become HTTP answers: `{"error": "<code>", "detail": "<text>"}`.

Domain packages raise their own exceptions (each with a `code` class attribute); this module
maps exception classes to statuses. A class missing from the table is a bug and answers 500.

The same table documents the answers: a route declares the errors it can answer with
`responses=error_responses(VoiceNotFound, ...)`, a dependency with `declare_dependency_errors`,
and gateway/openapi.py writes both into the OpenAPI document as `ErrorBody`, each status with
the codes it can carry.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Protocol

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

import audit.errors as audit_errors
import engine.errors as engine_errors
import policy.errors as policy_errors
import policy.text_rules as text_rules
import watermark.errors as watermark_errors
from gateway.logs import request_id_var

log = logging.getLogger("clonegate.errors")


class GatewayError(Exception):
    """An error raised by the gateway itself (HTTP, auth, request decoding)."""

    code = "gateway_error"
    status = 500
    headers: dict[str, str] | None = None

    def __init__(self, detail: str, *, code: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code


class AuthenticationFailed(GatewayError):
    """No usable bearer token. `code` says why (token_expired, token_invalid_signature, …)."""

    code = "authentication_failed"
    status = 401
    headers = {"WWW-Authenticate": "Bearer"}  # noqa: RUF012 (read, never mutated)


class IdentityProviderUnavailable(GatewayError):
    """The identity provider's keys cannot be read now, so no token can be checked: a token is
    not called forged (401) because its key could not be fetched."""

    code = "identity_provider_unavailable"
    status = 503

    def __init__(self, detail: str, *, retry_after: float) -> None:
        super().__init__(detail)
        self.headers = {"Retry-After": str(max(1, round(retry_after)))}


class PermissionDenied(GatewayError):
    code = "permission_denied"
    status = 403


class PayloadTooLarge(GatewayError):
    code = "payload_too_large"
    status = 413


class DatabaseUnavailable(GatewayError):
    """The database could not be reached or refused the work; nothing was decided or released."""

    code = "database_unavailable"
    status = 503


class ProvenanceSigningFailed(GatewayError):
    """The output's C2PA manifest could not be signed (an expired certificate, a codec c2pa
    cannot read back): like an unmarked output, an unsigned one is never released."""

    code = "provenance_signing_failed"
    status = 503


class NotFound(GatewayError):
    code = "not_found"
    status = 404


class ChallengeWrongKind(GatewayError):
    """A consent challenge presented to the opt-out route, or the other way round."""

    code = "challenge_wrong_kind"
    status = 409


class StreamFormatUnsupported(GatewayError):
    """`?stream=true` sends WAV: a growing PCM stream needs no whole-file encoder or index."""

    code = "stream_format_unsupported"
    status = 422


# Domain exception classes and their HTTP status. Lookup walks the exception's MRO, so a
# base class entry covers its subclasses unless a subclass has its own entry. A domain error
# that is not here answers 500 without its detail: add it here when you add it there.
STATUS_BY_ERROR: dict[type[Exception], int] = {
    # audit: a store that cannot record stops everything (503)
    audit_errors.AuditError: 500,
    audit_errors.AuditUnavailable: 503,
    audit_errors.LogIntegrityError: 503,
    audit_errors.CheckpointError: 503,
    audit_errors.SigningKeyError: 500,
    audit_errors.InvalidAuditEvent: 422,
    audit_errors.ProofUnavailable: 404,
    audit_errors.InvalidProof: 422,
    audit_errors.BundleInvalid: 422,
    audit_errors.RetentionViolation: 409,
    # engine
    engine_errors.EngineError: 502,
    engine_errors.EngineInputInvalid: 422,
    engine_errors.EngineUnavailable: 503,
    engine_errors.EngineNotReady: 503,
    engine_errors.EngineBusy: 429,
    engine_errors.EngineTimeout: 504,
    engine_errors.EngineCancelled: 503,
    engine_errors.EngineRequestFailed: 502,
    engine_errors.EngineOutputInvalid: 502,
    # watermark: an output that cannot be marked is never released
    watermark_errors.WatermarkError: 503,
    watermark_errors.InvalidAudio: 422,
    watermark_errors.InvalidPayload: 422,
    # policy: audio, consent, protected speakers, text
    policy_errors.PolicyError: 500,
    policy_errors.AudioUnusable: 422,
    policy_errors.SpeakerModelError: 503,
    policy_errors.EmbeddingInvalid: 503,
    policy_errors.ConsentRequestInvalid: 422,
    policy_errors.StatementTemplateInvalid: 503,
    policy_errors.IdentityAssuranceRequired: 403,
    policy_errors.ChallengeNotFound: 404,
    policy_errors.ChallengeExpired: 410,
    policy_errors.ChallengeAlreadyUsed: 409,
    policy_errors.ChallengeNotYours: 404,
    policy_errors.ConsentWordsNotRevealed: 409,
    policy_errors.ConsentRecordingLate: 410,
    policy_errors.SpeechRecognitionFailed: 422,
    policy_errors.StatementNotSpoken: 422,
    policy_errors.ChallengePhraseMismatch: 422,
    policy_errors.ConsentSpeakerMismatch: 422,
    policy_errors.ConsentRecordingSynthetic: 422,
    policy_errors.ConsentRecordingReplayed: 409,
    policy_errors.ReferenceQualityError: 422,
    policy_errors.VoiceNotFound: 404,
    policy_errors.NotVoiceOwner: 404,
    policy_errors.VoiceErased: 410,
    policy_errors.ConsentNotFound: 404,
    policy_errors.ConsentMissing: 404,
    policy_errors.ConsentRevoked: 403,
    policy_errors.ConsentNotInWindow: 403,
    policy_errors.ConsentScopeMismatch: 403,
    policy_errors.ConsentUsesExhausted: 403,
    policy_errors.VoiceKeyDestroyed: 410,
    policy_errors.VoiceKeyUnwrapFailed: 503,
    policy_errors.BlocklistMisconfigured: 503,
    policy_errors.SpeakerProtected: 403,
    policy_errors.SpeakerReviewRequired: 409,
    policy_errors.ProtectedSpeakerNotFound: 404,
    policy_errors.ProtectedSpeakerInactive: 409,
    policy_errors.BlocklistExceptionRefused: 409,
    policy_errors.OptOutRefused: 422,
    policy_errors.ReviewItemNotFound: 404,
    policy_errors.ReviewAlreadyDecided: 409,
    policy_errors.ProtectedSpeakerInvalid: 422,
    text_rules.TextRejected: 422,
    text_rules.TextRulesMisconfigured: 503,
}


# Unknown ids and ids the caller may not see answer alike: 404, one code and one fixed text per
# kind of id, whatever the exception says (its text may name the id or the owner; it stays in
# the log, and the audit reason keeps the exception's own code), so ids cannot be probed.
UNSEEN_ANSWERS: dict[type[Exception], tuple[str, str]] = {
    policy_errors.VoiceNotFound: ("voice_not_found", "no such voice"),
    policy_errors.NotVoiceOwner: ("voice_not_found", "no such voice"),
    # Synthesis: no consent names the caller, so the voice is not one it may see.
    policy_errors.ConsentMissing: ("voice_not_found", "no such voice"),
    policy_errors.ConsentNotFound: ("consent_not_found", "no such consent"),
    policy_errors.ChallengeNotFound: ("challenge_not_found", "no such challenge"),
    policy_errors.ChallengeNotYours: ("challenge_not_found", "no such challenge"),
    policy_errors.ReviewItemNotFound: ("review_item_not_found", "no such review item"),
}


def unseen_answer(exc: Exception) -> tuple[str, str] | None:
    """(code, detail) when ``exc`` says an id is unknown or not the caller's to see."""
    for cls in type(exc).__mro__:
        if cls in UNSEEN_ANSWERS:
            return UNSEEN_ANSWERS[cls]
    return None


def status_for(exc: Exception) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return 500


def error_body(code: str, detail: str) -> dict[str, str]:
    return {"error": code, "detail": detail}


class ErrorBody(BaseModel):
    """The body of every error answer (the OpenAI-compatible routes answer OpenAI's shape)."""

    model_config = ConfigDict(extra="forbid")

    error: str = Field(description="a stable, machine-readable code; each status lists the codes it can carry")
    detail: str = Field(description="what went wrong, in words")


# What a route or dependency can answer: an exception class (its code and those of its
# subclasses, each with its status from the table above or its own `status`), or an explicit
# (status, code) for codes chosen at the raise site, e.g. (401, "token_expired").
ErrorSource = type[Exception] | tuple[int, str]
# The OpenAPI response key that lists a status' codes, read by gateway/openapi.py.
ERROR_CODES_KEY = "x-error-codes"
VALIDATION_ERROR = (422, "invalid_request")
# FastAPI's own answers: a body that is not JSON or multipart at all (400), no such path, no such method.
HTTP_ERROR_CODES = {400: "malformed_body", 404: "not_found", 405: "method_not_allowed"}
MALFORMED_BODY = (400, "malformed_body")


def status_of_class(cls: type[Exception]) -> int:
    if issubclass(cls, GatewayError):
        return cls.status
    for base in cls.__mro__:
        if base in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[base]
    return 500


def _codes(source: ErrorSource) -> Iterator[tuple[int, str]]:
    if isinstance(source, tuple):
        yield source
        return
    pending = [source]
    while pending:
        cls = pending.pop()
        # An id the caller may not see is answered as an unknown one: document that answer's code.
        unseen = UNSEEN_ANSWERS.get(cls)
        code = unseen[0] if unseen is not None else getattr(cls, "code", None)
        status = status_of_class(cls)
        if isinstance(code, str) and status != 500:  # a 500 is a bug, never a documented answer
            yield status, code
        pending += cls.__subclasses__()


def error_codes(*sources: ErrorSource) -> dict[int, list[str]]:
    """Each status the sources answer, with its codes in order."""
    by_status: dict[int, list[str]] = {}
    for source in sources:
        for status, code in _codes(source):
            if code not in by_status.setdefault(status, []):
                by_status[status].append(code)
    return dict(sorted(by_status.items()))


def error_responses(*sources: ErrorSource, model: type[BaseModel] = ErrorBody) -> dict[int | str, dict[str, Any]]:
    """The `responses=` of a route: every status its errors answer, with its codes, as `ErrorBody`
    (or, for a route that answers another error shape, as `model`)."""
    return {
        status: {"model": model, "description": describe_codes(codes), ERROR_CODES_KEY: codes}
        for status, codes in error_codes(*sources).items()
    }


def describe_codes(codes: list[str]) -> str:
    return "error: " + ", ".join(f"`{code}`" for code in codes)


# Dependencies (the caller, the session, a rate limit) raise the same errors on every route that
# uses them; gateway/openapi.py adds these to each route whose dependency tree contains them.
_DEPENDENCY_ERRORS: dict[Callable[..., Any], tuple[ErrorSource, ...]] = {}


def declare_dependency_errors(dependency: Callable[..., Any], *sources: ErrorSource) -> None:
    _DEPENDENCY_ERRORS[dependency] = sources


def dependency_errors(dependency: Callable[..., Any]) -> tuple[ErrorSource, ...]:
    return _DEPENDENCY_ERRORS.get(dependency, ())


def allowed_methods(request: Request) -> str:
    """Every method some route of this path answers (Starlette names only the first route's)."""
    methods: set[str] = set()
    for route in iter_route_contexts(request.app.routes):
        pattern = getattr(route, "path_regex", None)
        if pattern is not None and pattern.match(request.url.path):
            methods |= route.methods or set()
    return ", ".join(sorted(methods))


class ErrorShape(Protocol):
    """Another API's error body (OpenAI's, gateway/openai_api/errors.py) for the paths it serves."""

    def serves(self, path: str) -> bool: ...

    def body(self, *, status: int, code: str, detail: str, param: str | None) -> dict[str, Any]: ...


def shaped_error_body(
    shapes: Sequence[ErrorShape], path: str, *, status: int, code: str, detail: str, param: str | None = None
) -> dict[str, Any]:
    """The error body of this path: another API's shape where one serves it, else `ErrorBody`'s."""
    shape = next((shape for shape in shapes if shape.serves(path)), None)
    if shape is None:
        return error_body(code, detail)
    return shape.body(status=status, code=code, detail=detail, param=param)


def install_error_handlers(app: FastAPI, *, shapes: Sequence[ErrorShape] = ()) -> None:
    def answer(
        request: Request,
        *,
        status: int,
        code: str,
        detail: str,
        headers: Mapping[str, str] | None = None,
        param: str | None = None,
    ) -> JSONResponse:
        body = shaped_error_body(shapes, request.url.path, status=status, code=code, detail=detail, param=param)
        return JSONResponse(body, status_code=status, headers=headers)

    @app.exception_handler(GatewayError)
    async def _gateway_error(request: Request, exc: GatewayError) -> JSONResponse:
        return answer(request, status=exc.status, code=exc.code, detail=exc.detail, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        location = [str(part) for part in first.get("loc", ())]
        where = ".".join(location)
        detail = f"{where}: {first.get('msg', 'invalid request')}" if where else "invalid request"
        # the field, without where it was sent ("body", "query", "header")
        param = ".".join(location[1:]) or None
        return answer(request, status=422, code="invalid_request", detail=detail, param=param)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = HTTP_ERROR_CODES.get(exc.status_code, "http_error")
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = allowed_methods(request) or headers.get("Allow", "")
        return answer(request, status=exc.status_code, code=code, detail=str(exc.detail), headers=headers or None)

    async def _domain_error(request: Request, exc: Exception) -> JSONResponse:
        headers = {}
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            headers["Retry-After"] = str(max(1, round(retry_after)))
        code, detail = unseen_answer(exc) or (getattr(exc, "code", None) or "internal_error", str(exc))
        return answer(request, status=status_for(exc), code=code, detail=detail, headers=headers or None)

    # Registered per class: Starlette routes a handler for bare `Exception` through its
    # server-error middleware, which is only right for the unexpected-500 case below.
    for error_class in STATUS_BY_ERROR:
        app.add_exception_handler(error_class, _domain_error)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error", exc_info=exc, extra={"error_type": type(exc).__name__})
        # This answer is sent from outside the request-id middleware; the id is still in context.
        request_id = request_id_var.get()
        headers = {"X-Request-ID": request_id} if request_id else None
        return answer(request, status=500, code="internal_error", detail="internal error", headers=headers)
