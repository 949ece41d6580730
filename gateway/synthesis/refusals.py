"""How a synthesis request that ends without (all of) its audio is put on the record.

A refusal at admission records `request.denied`; a failure after admission `request.failed`; a
client that went away `request.cancelled` (reason ``client_disconnected``), and one this replica
stopped while shutting down `request.cancelled` (reason ``shutdown``). Each is committed on its
own, after the request's own transaction was rolled back; after admission, in one transaction
with the request's reserved use given back (if no release spent it) and its lease deleted
(gateway/replicas). A voice scored between the protected-speaker list's thresholds is also held
for an admin: the hold is the request's outcome, so it is committed although the request fails
(no audio either way).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session, sessionmaker

from audit.events import Action
from engine.interface import CancelToken
from gateway.auth import Principal
from gateway.replicas.leases import SHUTDOWN
from gateway.replicas.replica import ThisReplica
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
    def __init__(self, sessions: sessionmaker[Session], *, replica: ThisReplica) -> None:
        self._sessions = sessions
        self._replica = replica

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
        """`request.cancelled` when the client went away or this replica is shutting down, else
        `request.failed`; recorded with the lease closed and an unspent use given back.
        ``released_sha256`` is what a stream had already sent."""
        stopped = cancel.reason if cancel.cancelled and cancel.reason in (CLIENT_DISCONNECTED, SHUTDOWN) else None
        self._hold_if_review(principal=principal, request=request, request_id=admission.request_id, error=error)
        event = steps.refusal_event(
            principal=principal,
            request=request,
            request_id=admission.request_id,
            action=Action.REQUEST_CANCELLED if stopped else Action.REQUEST_FAILED,
            reason=stopped or _reason_of(error),
            consent_id=admission.grant.consent_id,
            released_sha256=released_sha256,
            watermark_id=admission.watermark_id if released_sha256 else None,
        )
        try:
            self._replica.close_own(request_id=admission.request_id, event=event, sessions=self._sessions)
        except Exception:  # the refusal stands; this replica retries the record
            log.error(
                "could not record %s (%s) for request %s",
                event.action.value,
                event.reason,
                admission.request_id,
                exc_info=True,
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
        self, *, principal: Principal, request: SynthesisRequest, request_id: str, action: Action, error: BaseException
    ) -> None:
        event = steps.refusal_event(
            principal=principal, request=request, request_id=request_id, action=action, reason=_reason_of(error)
        )
        record_refusal(self._sessions, event=event)


def _reason_of(error: BaseException) -> str:
    reason = getattr(error, "code", None)
    if isinstance(reason, str):
        return reason
    return "cancelled" if isinstance(error, (KeyboardInterrupt, GeneratorExit)) else "internal_error"
