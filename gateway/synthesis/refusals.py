"""How a synthesis request that ends without (all of) its audio is put on the record.

A refusal at admission records `request.denied`; a failure after admission `request.failed`; a
client that went away `request.cancelled`. Each is committed on its own, after the request's own
transaction was rolled back. A voice scored between the protected-speaker list's thresholds is
also held for an admin: the hold is the request's outcome, so it is committed although the
request fails (no audio either way).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session, sessionmaker

from audit.events import Action
from engine.interface import CancelToken
from gateway.auth import Principal
from gateway.shared.reasons import CLIENT_DISCONNECTED
from gateway.shared.transactions import record_refusal
from gateway.synthesis import steps
from gateway.synthesis.steps import SynthesisRequest
from policy.blocklist.review import hold_for_review
from policy.errors import SpeakerReviewRequired

if TYPE_CHECKING:
    from gateway.synthesis.steps import Admission

log = logging.getLogger("clonegate.pipeline")


class RefusalRecorder:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def at_admission(
        self, *, principal: Principal, request: SynthesisRequest, request_id: str, error: BaseException
    ) -> None:
        self._hold_if_review(principal=principal, request=request, request_id=request_id, error=error)
        self._record(
            principal=principal, request=request, request_id=request_id, action=Action.REQUEST_DENIED, error=error
        )

    def after_admission(
        self,
        *,
        principal: Principal,
        request: SynthesisRequest,
        admission: Admission,
        error: BaseException,
        cancel: CancelToken,
        released_sha256: str | None = None,
    ) -> None:
        """`request.cancelled` when the client went away, else `request.failed`.
        ``released_sha256`` is what a stream had already sent."""
        client_left = cancel.cancelled and cancel.reason == CLIENT_DISCONNECTED
        self._hold_if_review(principal=principal, request=request, request_id=admission.request_id, error=error)
        self._record(
            principal=principal,
            request=request,
            request_id=admission.request_id,
            action=Action.REQUEST_CANCELLED if client_left else Action.REQUEST_FAILED,
            error=error,
            consent_id=admission.grant.consent_id,
            released_sha256=released_sha256,
            watermark_id=admission.watermark_id if released_sha256 else None,
        )

    def _hold_if_review(
        self, *, principal: Principal, request: SynthesisRequest, request_id: str, error: BaseException
    ) -> None:
        if not isinstance(error, SpeakerReviewRequired):
            return
        try:
            with self._sessions() as session:
                item = hold_for_review(
                    session,
                    held=error,
                    voice_id=request.voice_id,
                    request_ref=request_id,
                    requester_iss=principal.issuer,
                    requester_sub=principal.subject,
                    tenant=principal.tenant,
                )
                session.commit()
            error.args = (f"{error.args[0]} (review item {item.id})",)
        except Exception:  # the refusal stands; an admin sees it in the audit log instead
            log.error("could not queue request %s for review", request_id, exc_info=True)

    def _record(
        self,
        *,
        principal: Principal,
        request: SynthesisRequest,
        request_id: str,
        action: Action,
        error: BaseException,
        consent_id: str | None = None,
        released_sha256: str | None = None,
        watermark_id: str | None = None,
    ) -> None:
        reason = getattr(error, "code", None)
        if action is Action.REQUEST_CANCELLED:
            reason = CLIENT_DISCONNECTED
        elif not isinstance(reason, str):
            reason = "cancelled" if isinstance(error, (KeyboardInterrupt, GeneratorExit)) else "internal_error"
        event = steps.refusal_event(
            principal=principal,
            request=request,
            request_id=request_id,
            action=action,
            reason=reason,
            consent_id=consent_id,
            released_sha256=released_sha256,
            watermark_id=watermark_id,
        )
        record_refusal(self._sessions, event=event)
