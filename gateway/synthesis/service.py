"""The synthesis service: the one path from a synthesis request to released audio.

Admission (consent, references, text) and the `admitted` audit event commit in one transaction
before the engine runs. Then each piece of audio (the whole text, or one chunk of a stream) goes
through `release_piece`: engine → watermark with its self-check → protected-speaker check of the
output → encoding (and, when lossy, the mark verified in the encoded bytes) → consent re-check,
usage ledger and `released` event committed. Any failure after admission records
`request.failed` and releases nothing; a refusal at admission records `request.denied`; a client
that went away leaves `request.cancelled`.

Admission also leases the request to this replica (gateway/replicas) and reserves the consent
use it counts; the engine's queue place is taken before, so a full queue refuses before any of
it. The first release spends the use; every other outcome gives it back in its own transaction,
and the outcome deletes the lease, so a request has exactly one outcome even if this process
dies (another replica then closes it as `request.abandoned`).

Routes call `synthesize` (whole) or `open_stream` (chunk by chunk, gateway/synthesis/streaming.py)
with an `OutputEncoding` (gateway/synthesis/encoding.py); `file_encoding` and `stream_encoding`
give the labelled formats of `POST /v1/synthesize`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from engine.interface import CancelToken, EngineAudio, concatenate_chunks
from gateway import __version__
from gateway.auth import Principal
from gateway.components import Components
from gateway.metrics import engine_job, pipeline_step
from gateway.rate_limits.limiter import RateLimiter, RequestKind
from gateway.replicas import leases
from gateway.replicas.replica import ThisReplica
from gateway.shared.actors import actor_of
from gateway.shared.clock import utcnow
from gateway.shared.transactions import commit_write_ahead, database_errors
from gateway.synthesis import steps
from gateway.synthesis.encoding import LabelledFile, OutputEncoding, PieceEncoder, WavStream, labelled_file, wav_stream
from gateway.synthesis.labelling import ContentLabel
from gateway.synthesis.refusals import RefusalRecorder
from gateway.synthesis.steps import Admission, HeldBack, ReleasedPiece, SynthesisRequest
from gateway.synthesis.streaming import SynthesisStream
from policy.consent.grants import record_usage
from watermark import WatermarkSelfCheckFailed


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


class StepTimes(dict[str, float]):
    """Seconds spent in each pipeline step, for the Server-Timing header and the benchmark."""

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        with pipeline_step(name) as started:
            try:
                yield
            finally:
                self[name] = self.get(name, 0.0) + time.perf_counter() - started


class SynthesisService:
    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        components: Components,
        rate_limiter: RateLimiter,
        replica: ThisReplica,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._sessions = sessions
        self._parts = components
        self._rate_limiter = rate_limiter
        self._clock = clock
        self.replica = replica
        self.refusals = RefusalRecorder(sessions, replica=replica)

    # --- what routes call ------------------------------------------------------------------

    def file_encoding(self, output_format: str) -> LabelledFile:
        """A whole labelled file in one of `OUTPUT_FORMATS`, signed where the container allows."""
        return labelled_file(output_format, signer=self._parts.signer)

    def stream_encoding(self, output_format: str) -> WavStream:
        """The streamed form of `output_format` (WAV only), or `StreamFormatUnsupported`."""
        return wav_stream(output_format)

    def synthesize(
        self,
        *,
        principal: Principal,
        request: SynthesisRequest,
        encoding: OutputEncoding,
        cancel: CancelToken | None = None,
    ) -> Released:
        """Admit, then release the whole text as one piece."""
        cancel = cancel or CancelToken()
        times = StepTimes()
        admission = self.admit(principal=principal, request=request, times=times, cancel=cancel)
        try:
            return self.release_whole(
                principal=principal, request=request, admission=admission, encoding=encoding, cancel=cancel, times=times
            )
        except BaseException as exc:
            self.refusals.after_admission(
                principal=principal, request=request, admission=admission, error=exc, cancel=cancel
            )
            raise
        finally:
            admission.give_back_engine_slot()

    def open_stream(
        self, *, principal: Principal, request: SynthesisRequest, encoding: OutputEncoding, cancel: CancelToken
    ) -> SynthesisStream:
        """Admit the request now (a refusal raises here, before any response starts); the
        returned stream releases chunk by chunk as it is read."""
        admission = self.admit(principal=principal, request=request, times=StepTimes(), cancel=cancel)
        return SynthesisStream(
            service=self,
            principal=principal,
            request=request,
            admission=admission,
            cancel=cancel,
            encode=encoding.encoder(self.label_for(admission)),
            lossy=encoding.lossy,
            encoding_name=encoding.name,
            media_type=encoding.media_type,
        )

    # --- the pipeline --------------------------------------------------------------------------

    def admit(
        self,
        *,
        principal: Principal,
        request: SynthesisRequest,
        times: StepTimes | None = None,
        cancel: CancelToken | None = None,
    ) -> Admission:
        """A place in the engine queue, consent, the voice's references, text rules, and the
        `admitted` event committed with the reserved use and the request's lease; a refusal
        records `request.denied` (or a review hold) and raises."""
        parts, times = self._parts, times if times is not None else StepTimes()
        # Before anything is recorded: a flood of refused requests writes no event per request.
        self._rate_limiter.admit(principal, RequestKind.SYNTHESIS)
        request_id = uuid.uuid4().hex
        slot = None
        with self._sessions() as session:
            try:
                self.replica.check_accepting()
                with times.step("engine_queue"):
                    slot = steps.reserve_engine(parts.executor)
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
                        leases.open_lease(
                            session,
                            request_id=request_id,
                            replica_id=self.replica.id,
                            voice_id=request.voice_id,
                            consent_id=grant.consent_id,
                            actor=actor_of(principal),
                            text_sha256=steps.sha256_hex(text.encode()),
                            now=self._clock(),
                        )
                        # Commits the reserved consent use and the lease with the event that records them.
                        audit_id = commit_write_ahead(session, event=event)
            except BaseException as exc:
                session.rollback()
                if slot is not None:
                    slot.release()
                self.refusals.at_admission(principal=principal, request=request, request_id=request_id, error=exc)
                raise
        self.replica.track(request_id, cancel or CancelToken())
        return Admission(
            request_id=request_id,
            grant=grant,
            text=text,
            audit_id=audit_id,
            engine=engine,
            voice_profile=voice.engine_profile,
            engine_slot=slot,
        )

    def release_whole(
        self,
        *,
        principal: Principal,
        request: SynthesisRequest,
        admission: Admission,
        encoding: OutputEncoding,
        cancel: CancelToken,
        times: StepTimes,
    ) -> Released:
        label = self.label_for(admission)
        piece = self.release_piece(
            principal=principal,
            request=request,
            admission=admission,
            text=admission.text,
            encode=encoding.encoder(label),
            lossy=encoding.lossy,
            encoding_name=encoding.name,
            first=True,
            last=True,
            cancel=cancel,
            times=times,
        )
        assert isinstance(piece, ReleasedPiece)  # a whole request never holds back
        return Released(
            body=piece.body,
            media_type=encoding.media_type,
            request_id=admission.request_id,
            audit_id=admission.audit_id,
            released_audit_id=piece.released_audit_id,
            content_id=label.content_id,
            watermark_id=piece.watermark_id,
            consent_id=admission.grant.consent_id,
            step_seconds=dict(times),
        )

    def release_piece(
        self,
        *,
        principal: Principal,
        request: SynthesisRequest,
        admission: Admission,
        text: str,
        encode: PieceEncoder,
        lossy: bool,
        encoding_name: str,
        first: bool,
        last: bool,
        cancel: CancelToken,
        times: StepTimes | None = None,
        held_back: EngineAudio | None = None,
        may_hold_back: bool = False,
    ) -> ReleasedPiece | HeldBack:
        """The per-piece step order, for a whole request and for each chunk of a stream: engine →
        watermark and self-check → output screening → encoding (mark verified again when lossy) →
        release. With ``may_hold_back``, a piece whose mark does not verify comes back as
        `HeldBack` instead of failing, to go out marked together with the next piece."""
        parts, times = self._parts, times if times is not None else StepTimes()
        with times.step("engine"), engine_job(max_concurrency=parts.executor.max_concurrency):
            audio = steps.run_engine(
                parts.executor,
                request=request,
                text=text,
                voice=admission.voice_profile,
                cancel=cancel,
                slot=admission.engine_slot if first else None,
            )
        if held_back is not None:
            audio = concatenate_chunks([held_back, audio])
        payload = steps.payload_for(admission.audit_id)
        with times.step("watermark"):
            try:
                marked = steps.watermark_output(parts.watermark, audio, payload=payload)
            except WatermarkSelfCheckFailed:
                if may_hold_back:
                    return HeldBack(audio=audio)
                raise
        with times.step("blocklist_output"):
            steps.check_output_not_protected(
                parts.blocklist, embedder=parts.embedder, voice_id=request.voice_id, marked=marked
            )
        with times.step("encode"):
            body = encode(marked)
            if lossy:
                steps.check_encoded_mark(parts.watermark, body, encoding=encoding_name, payload=payload)
        with times.step("release"):
            released_audit_id = self._release(
                principal=principal,
                request=request,
                admission=admission,
                output_sha256=steps.sha256_hex(body),
                watermark_id=marked.watermark_id,
                first=first,
                last=last,
            )
        self._rate_limiter.spend_audio(principal, seconds=len(marked.samples) / marked.sample_rate)
        return ReleasedPiece(body=body, watermark_id=marked.watermark_id, released_audit_id=released_audit_id)

    def label_for(self, admission: Admission) -> ContentLabel:
        return ContentLabel(
            provider=self._parts.provider,
            system="clonegate",
            system_version=__version__,
            created_at=self._clock(),
            content_id=admission.content_id,
        )

    def _release(
        self,
        *,
        principal: Principal,
        request: SynthesisRequest,
        admission: Admission,
        output_sha256: str,
        watermark_id: str,
        first: bool,
        last: bool,
    ) -> int:
        """Re-check consent and commit the `released` event (with the usage ledger row and the
        reserved use spent on the ``first`` release of a request; a stream releases once per
        chunk, and its ``last`` release is its outcome) before bytes leave. Nothing is released
        for a request whose lease another replica has closed."""
        with self._sessions() as session:
            try:
                with database_errors():
                    now = self._clock()
                    lease = leases.hold(session, request_id=admission.request_id, replica_id=self.replica.id)
                    steps.recheck_consent(session, grant=admission.grant, now=now)
                    if first:
                        leases.spend_use(lease)
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
                    if last:
                        session.delete(lease)
                    released_id = commit_write_ahead(session, event=event)
            except BaseException:
                session.rollback()
                raise
        if last:
            self.replica.untrack(admission.request_id)
        return released_id
