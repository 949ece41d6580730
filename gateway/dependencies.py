"""The typed dependencies routes declare: the request's session, its caller and the services.

The one place that reads the app's state: `create_app` stores its `Gateway` there, and every
other module reaches a service through an `Annotated[..., Depends(...)]` alias below. A test or
another deployment swaps a service with ``app.dependency_overrides[synthesis_service] = ...``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from gateway.audit_log.service import AuditService
from gateway.auth import CLAIM_REFUSALS, TOKEN_REFUSALS, Permission, Principal, require
from gateway.blocklist.exceptions import BlocklistExceptions
from gateway.blocklist.service import BlocklistService
from gateway.container import Gateway
from gateway.detection.service import DetectionService
from gateway.enrollment.service import EnrollmentService
from gateway.errors import (
    AuthenticationFailed,
    DatabaseUnavailable,
    IdentityProviderUnavailable,
    PermissionDenied,
    declare_dependency_errors,
)
from gateway.openai_api.service import OpenAISpeechService
from gateway.rate_limits.limiter import RateLimited, RequestKind
from gateway.synthesis.service import SynthesisService
from gateway.voices.service import VoicesService


def gateway_of(app: FastAPI) -> Gateway:
    gateway: Gateway = app.state.gateway
    return gateway


def current_gateway(request: Request) -> Gateway:
    return gateway_of(request.app)


GatewayDep = Annotated[Gateway, Depends(current_gateway)]


def request_session(gateway: GatewayDep) -> Iterator[Session]:
    """The request's session: committed when the handler returns, rolled back when it raises;
    services only flush."""
    session = gateway.sessions()
    try:
        yield session
        session.commit()
    except SQLAlchemyError as exc:
        session.rollback()
        raise DatabaseUnavailable(f"the database did not store the change: {type(exc).__name__}") from exc
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


declare_dependency_errors(request_session, DatabaseUnavailable)
# scope="function": the commit runs when the handler returns, before the response is sent, so a
# failed commit is the client's error answer, never a 2xx for work that was not stored.
SessionDep = Annotated[Session, Depends(request_session, scope="function")]


# --- services -----------------------------------------------------------------------------------


def synthesis_service(gateway: GatewayDep) -> SynthesisService:
    return gateway.services.synthesis


def enrollment_service(gateway: GatewayDep) -> EnrollmentService:
    return gateway.services.enrollment


def voices_service(gateway: GatewayDep) -> VoicesService:
    return gateway.services.voices


def blocklist_service(gateway: GatewayDep) -> BlocklistService:
    return gateway.services.blocklist


def blocklist_exceptions_service(gateway: GatewayDep) -> BlocklistExceptions:
    return gateway.services.blocklist_exceptions


def detection_service(gateway: GatewayDep) -> DetectionService:
    return gateway.services.detection


def audit_service(gateway: GatewayDep) -> AuditService:
    return gateway.services.audit


def openai_speech_service(gateway: GatewayDep) -> OpenAISpeechService:
    return gateway.services.openai_speech


SynthesisDep = Annotated[SynthesisService, Depends(synthesis_service)]
EnrollmentDep = Annotated[EnrollmentService, Depends(enrollment_service)]
VoicesDep = Annotated[VoicesService, Depends(voices_service)]
BlocklistDep = Annotated[BlocklistService, Depends(blocklist_service)]
BlocklistExceptionsDep = Annotated[BlocklistExceptions, Depends(blocklist_exceptions_service)]
DetectionDep = Annotated[DetectionService, Depends(detection_service)]
AuditDep = Annotated[AuditService, Depends(audit_service)]
OpenAISpeechDep = Annotated[OpenAISpeechService, Depends(openai_speech_service)]


# --- callers: each route declares the permission it needs -----------------------------------


SelfReader = Annotated[Principal, require(Permission.READ_SELF)]
Owner = Annotated[Principal, require(Permission.MANAGE_OWN_VOICES)]
Synthesizer = Annotated[Principal, require(Permission.SYNTHESIZE)]
ListAdmin = Annotated[Principal, require(Permission.MANAGE_BLOCKLIST)]
Reviewer = Annotated[Principal, require(Permission.DECIDE_REVIEWS)]
AuditReader = Annotated[Principal, require(Permission.READ_AUDIT)]
SettingsReader = Annotated[Principal, require(Permission.READ_SETTINGS)]


def enrollment_caller(principal: Owner, gateway: GatewayDep) -> Principal:
    """An owner enrolling (challenges, voices, samples), within the enrollment rate limits."""
    gateway.rate_limiter.admit(principal, RequestKind.ENROLLMENT)
    return principal


declare_dependency_errors(enrollment_caller, RateLimited)
Enroller = Annotated[Principal, Depends(enrollment_caller)]

_optional_bearer = HTTPBearer(auto_error=False, description="A JWT from the identity provider")


def detect_caller(
    request: Request,
    gateway: GatewayDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_optional_bearer)],
) -> Principal | None:
    """The authenticated caller, or None for an anonymous caller where the operator allows it."""
    if credentials is not None:
        principal = gateway.token_verifier.verify(credentials.credentials)
        if not principal.has(Permission.DETECT):
            raise PermissionDenied("this token may not use the detector")
        gateway.rate_limiter.admit(principal, RequestKind.DETECTION)
        return principal
    if not gateway.settings.detect_allow_anonymous:
        raise AuthenticationFailed("a bearer token is required", code="token_missing")
    gateway.rate_limiter.admit_anonymous_detection(request.client.host if request.client else "unknown")
    return None


declare_dependency_errors(
    detect_caller, *TOKEN_REFUSALS, *CLAIM_REFUSALS, IdentityProviderUnavailable, PermissionDenied, RateLimited
)
DetectCaller = Annotated[Principal | None, Depends(detect_caller)]
