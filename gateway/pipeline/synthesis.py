"""The one path from a synthesis request to released audio.

Admission (consent, references, text) and the `admitted` audit event commit in one
transaction before the engine runs; release (consent re-check, usage ledger, `released` event)
commits in another after the output was marked and screened. Any failure in between records a
`request.failed` event and releases nothing; a refusal at admission records `request.denied`;
a client that went away leaves `request.cancelled`. A streamed request (``open_stream``,
gateway/pipeline/streaming.py) goes through the same steps once per chunk.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from audit.events import Action, EngineInfo
from engine.executor import BoundedExecutor
from engine.interface import CancelToken, EngineAudio, VoiceProfile
from gateway import __version__
from gateway.audit_hooks import commit_write_ahead, record_refusal
from gateway.auth import Principal
from gateway.errors import DatabaseUnavailable, StreamFormatUnsupported
from gateway.labelling import OUTPUT_FORMATS, ContentLabel, encode_labelled
from gateway.pipeline import steps
from gateway.pipeline.marked import MarkedAudio
from gateway.pipeline.steps import SynthesisRequest
from gateway.pipeline.streaming import CLIENT_DISCONNECTED, STREAM_FORMAT, SynthesisStream
from gateway.provenance import ManifestSigner
from gateway.voices import VoiceVault
from policy.blocklist.live import LiveBlocklist
from policy.blocklist.review import hold_for_review
from policy.consent.grants import Grant, record_usage
from policy.errors import SpeakerReviewRequired
from policy.speaker import SpeakerEmbedder
from policy.text_rules import TextRules
from watermark import WatermarkStack

log = logging.getLogger("clonegate.pipeline")


@dataclass(frozen=True)
class PipelineComponents:
    executor: BoundedExecutor
    watermark: WatermarkStack
    embedder: SpeakerEmbedder
    blocklist: LiveBlocklist
    text_rules: TextRules
    voices: VoiceVault
    provider: str
    signer: ManifestSigner  # signs each output's C2PA manifest (gateway/provenance.py)


@dataclass(frozen=True)
class Admission:
    request_id: str
    grant: Grant
    text: str
    audit_id: int  # the admitted event's audit identifier: the watermark payload
    engine: EngineInfo
    voice_profile: VoiceProfile


@dataclass(frozen=True)
class Released:
    body: bytes
    media_type: str
    request_id: str
    audit_id: int
    released_audit_id: int
    content_id: str
    watermark_id: str
    consent_id: str | None  # None: the owner's own use of the voice
    step_seconds: dict[str, float]


def _utcnow() -> datetime:
    return datetime.now(UTC)


@contextmanager
def database_errors() -> Iterator[None]:
    """A database failure inside a pipeline step is a specific 503, not an internal error."""
    try:
        yield
    except SQLAlchemyError as exc:
        raise DatabaseUnavailable(f"the database failed: {type(exc).__name__}") from exc


class StepTimes(dict[str, float]):
    """Seconds spent in each pipeline step, for the Server-Timing header and the benchmark."""

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self[name] = self.get(name, 0.0) + time.perf_counter() - started


def content_id_of(audit_id: int) -> str:
    return f"clonegate:{audit_id}"


class SynthesisPipeline:
    def __init__(
        self,
        *,
        session_factory: sessionmaker[Session],
        components: PipelineComponents,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._sessions = session_factory
        self._parts = components
        self._clock = clock

    def run(self, *, principal: Principal, request: SynthesisRequest, cancel: CancelToken | None = None) -> Released:
        if request.output_format not in OUTPUT_FORMATS:
            raise ValueError(f"unknown output format {request.output_format!r}")
        cancel = cancel or CancelToken()
        request_id = uuid.uuid4().hex
        times = StepTimes()
        admission = self._admit(principal=principal, request=request, request_id=request_id, times=times)
        try:
            return self._produce(principal=principal, request=request, admission=admission, cancel=cancel, times=times)
        except BaseException as exc:
            self.record_failure(principal=principal, request=request, admission=admission, error=exc, cancel=cancel)
            raise

    def open_stream(self, *, principal: Principal, request: SynthesisRequest, cancel: CancelToken) -> SynthesisStream:
        """Admit the request now (a refusal raises here, before any response starts); the
        returned stream synthesizes, marks, screens and releases chunk by chunk as it is read."""
        if request.output_format != STREAM_FORMAT:
            raise StreamFormatUnsupported(
                f"streamed output is {STREAM_FORMAT}; {request.output_format} needs the whole file"
            )
        request_id = uuid.uuid4().hex
        admission = self._admit(principal=principal, request=request, request_id=request_id, times=StepTimes())
        return SynthesisStream(
            pipeline=self,
            principal=principal,
            request=request,
            admission=admission,
            cancel=cancel,
            label=self.label_for(admission),
        )

    def label_for(self, admission: Admission) -> ContentLabel:
        return ContentLabel(
            provider=self._parts.provider,
            system="clonegate",
            system_version=__version__,
            created_at=self._clock(),
            content_id=content_id_of(admission.audit_id),
        )

    def record_failure(
        self,
        *,
        principal: Principal,
        request: SynthesisRequest,
        admission: Admission,
        error: BaseException,
        cancel: CancelToken,
        released_sha256: str | None = None,
    ) -> None:
        """After admission: `request.cancelled` when the client went away, else `request.failed`.
        ``released_sha256`` is what a stream had already sent."""
        client_left = cancel.cancelled and cancel.reason == CLIENT_DISCONNECTED
        self._hold_if_review(principal=principal, request=request, request_id=admission.request_id, error=error)
        self._record_refusal(
            principal=principal,
            request=request,
            request_id=admission.request_id,
            action=Action.REQUEST_CANCELLED if client_left else Action.REQUEST_FAILED,
            error=error,
            consent_id=admission.grant.consent_id,
            released_sha256=released_sha256,
            watermark_id=steps.payload_for(admission.audit_id).hex() if released_sha256 else None,
        )

    def _admit(
        self, *, principal: Principal, request: SynthesisRequest, request_id: str, times: StepTimes
    ) -> Admission:
        parts = self._parts
        with self._sessions() as session:
            try:
                with database_errors():
                    with times.step("consent"):
                        grant = steps.check_consent(session, principal=principal, request=request, now=self._clock())
                    with times.step("voice"):
                        voice = parts.voices.load(session, voice_id=request.voice_id)
                    with times.step("blocklist_references"):
                        steps.check_references_not_protected(
                            parts.blocklist,
                            voice_id=request.voice_id,
                            speaker_profile=voice.speaker_profile,
                            profile_embedder_name=voice.profile_embedder_name,
                        )
                    with times.step("text_rules"):
                        text = steps.check_text(parts.text_rules, request.text)
                    with times.step("audit_admitted"):
                        engine = steps.engine_info(parts.executor.describe())
                        event = steps.admitted_event(
                            principal=principal,
                            request=request,
                            grant=grant,
                            request_id=request_id,
                            text=text,
                            reference_sha256=voice.reference_sha256,
                            engine=engine,
                        )
                        # Commits the counted consent use together with the event that records it.
                        audit_id = commit_write_ahead(session, event=event)
            except BaseException as exc:
                session.rollback()
                self._hold_if_review(principal=principal, request=request, request_id=request_id, error=exc)
                self._record_refusal(
                    principal=principal, request=request, request_id=request_id, action=Action.REQUEST_DENIED, error=exc
                )
                raise
        return Admission(
            request_id=request_id,
            grant=grant,
            text=text,
            audit_id=audit_id,
            engine=engine,
            voice_profile=voice.engine_profile,
        )

    def engine_output(
        self,
        *,
        request: SynthesisRequest,
        admission: Admission,
        text: str,
        cancel: CancelToken,
        times: StepTimes | None = None,
    ) -> EngineAudio:
        times = StepTimes() if times is None else times
        with times.step("engine"):
            return steps.run_engine(
                self._parts.executor, request=request, text=text, voice=admission.voice_profile, cancel=cancel
            )

    def marked_output(
        self, *, request: SynthesisRequest, admission: Admission, audio: EngineAudio, times: StepTimes | None = None
    ) -> MarkedAudio:
        """Watermark with self-check → protected-speaker check of the marked output."""
        parts = self._parts
        times = StepTimes() if times is None else times
        with times.step("watermark"):
            marked = steps.watermark_output(parts.watermark, audio, payload=steps.payload_for(admission.audit_id))
        with times.step("blocklist_output"):
            steps.check_output_not_protected(
                parts.blocklist, embedder=parts.embedder, voice_id=request.voice_id, marked=marked
            )
        return marked

    def _produce(
        self,
        *,
        principal: Principal,
        request: SynthesisRequest,
        admission: Admission,
        cancel: CancelToken,
        times: StepTimes,
    ) -> Released:
        parts = self._parts
        audio = self.engine_output(
            request=request, admission=admission, text=admission.text, cancel=cancel, times=times
        )
        marked = self.marked_output(request=request, admission=admission, audio=audio, times=times)
        with times.step("encode"):
            label = self.label_for(admission)
            body = encode_labelled(marked, output_format=request.output_format, label=label, signer=parts.signer)
            steps.check_encoded_mark(parts.watermark, body, output_format=request.output_format, payload=marked.payload)
        with times.step("release"):
            released_audit_id = self.release(
                principal=principal,
                request=request,
                admission=admission,
                output_sha256=steps.sha256_hex(body),
                watermark_id=marked.watermark_id,
            )
        return Released(
            body=body,
            media_type=OUTPUT_FORMATS[request.output_format].media_type,
            request_id=admission.request_id,
            audit_id=admission.audit_id,
            released_audit_id=released_audit_id,
            content_id=label.content_id,
            watermark_id=marked.watermark_id,
            consent_id=admission.grant.consent_id,
            step_seconds=dict(times),
        )

    def release(
        self,
        *,
        principal: Principal,
        request: SynthesisRequest,
        admission: Admission,
        output_sha256: str,
        watermark_id: str,
        first: bool = True,
    ) -> int:
        """Re-check consent and commit the `released` event (with the usage ledger row on the
        ``first`` release of a request; a stream releases once per chunk) before bytes leave."""
        with self._sessions() as session:
            try:
                with database_errors():
                    now = self._clock()
                    steps.recheck_consent(session, grant=admission.grant, now=now)
                    if first:
                        record_usage(
                            session,
                            grant=admission.grant,
                            principal_iss=principal.issuer,
                            principal_sub=principal.subject,
                            tenant=principal.tenant,
                            text_sha256=steps.sha256_hex(admission.text.encode()),
                            audit_index=admission.audit_id,
                            now=now,
                        )
                    event = steps.released_event(
                        principal=principal,
                        request=request,
                        grant=admission.grant,
                        request_id=admission.request_id,
                        text=admission.text,
                        output_sha256=output_sha256,
                        watermark_id=watermark_id,
                        engine=admission.engine,
                    )
                    return commit_write_ahead(session, event=event)
            except BaseException:
                session.rollback()
                raise

    def _hold_if_review(
        self, *, principal: Principal, request: SynthesisRequest, request_id: str, error: BaseException
    ) -> None:
        """A voice scored between the list's thresholds is held for an admin: the hold is the
        request's outcome, so it is committed although the request fails (no audio either way)."""
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

    def _record_refusal(
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
