"""The synthesis pipeline's steps, each a separate function that raises a specific error.

Order (DESIGN.md): consent → protected-speaker check of the voice's references → text rules →
audit `admitted` committed → engine → watermark + self-check → protected-speaker check of the
output → consent re-check → audit `released`. `gateway/synthesis/service.py` runs them.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from sqlalchemy.orm import Session

from audit.events import Action, AuditEvent, Decision, Digests, EngineInfo, Subjects
from engine.errors import EngineError, EngineRequestFailed
from engine.executor import BoundedExecutor, EngineSlot
from engine.interface import CancelToken, EngineAudio, EngineDescription, SynthesisControls, VoiceProfile
from gateway.audio_io import decode_audio
from gateway.auth import Principal, Role
from gateway.shared.actors import actor_of
from gateway.synthesis.marked import MarkedAudio, mark_output, verify_keyed_mark
from policy.blocklist.live import LiveBlocklist
from policy.blocklist.models import ScreeningStage
from policy.blocklist.screening import screen
from policy.consent.grants import Grant, authorize_use, recheck
from policy.speaker import SpeakerEmbedder
from policy.text_rules import TextRules
from watermark import PAYLOAD_BYTES, WatermarkSelfCheckFailed, WatermarkStack

MAX_AUDIT_IDENTIFIER = 2 ** (8 * PAYLOAD_BYTES) - 1


@dataclass(frozen=True)
class SynthesisRequest:
    voice_id: str
    text: str
    language: str
    purpose: str
    speed: float = 1.0
    pitch_semitones: float = 0.0


@dataclass(frozen=True)
class Admission:
    request_id: str
    grant: Grant
    text: str
    audit_id: int  # the admitted event's audit identifier: the watermark payload
    engine: EngineInfo
    voice_profile: VoiceProfile
    # The engine queue place taken before admission, used by the request's first engine call.
    engine_slot: EngineSlot | None = None

    @property
    def content_id(self) -> str:
        return f"clonegate:{self.audit_id}"

    @property
    def watermark_id(self) -> str:
        return payload_for(self.audit_id).hex()

    def give_back_engine_slot(self) -> None:
        """When the request ends, the queue place if its engine call never took it."""
        if self.engine_slot is not None:
            self.engine_slot.release()


@dataclass(frozen=True)
class ReleasedPiece:
    body: bytes
    watermark_id: str
    released_audit_id: int


@dataclass(frozen=True)
class HeldBack:
    """A piece whose mark did not verify, to be marked again together with the next one."""

    audio: EngineAudio


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_consent(session: Session, *, principal: Principal, request: SynthesisRequest, now: datetime) -> Grant:
    """May this principal use this voice for this purpose and language now? Counts one use of a
    grant; the voice's owner, calling with an owner token, needs none."""
    return authorize_use(
        session,
        voice_id=request.voice_id,
        principal_iss=principal.issuer,
        principal_sub=principal.subject,
        tenant=principal.tenant,
        purpose=request.purpose,
        language=request.language,
        now=now,
        as_owner=Role.OWNER in principal.roles,
    )


def check_references_not_protected(
    blocklist: LiveBlocklist, *, voice_id: str, speaker_profile: np.ndarray, profile_embedder_name: str
) -> None:
    """The voice's references (their stored speaker profile) against the current list. A profile
    made by another speaker model than the list's is refused, never compared (after a model
    change the voice has to be enrolled again)."""
    screen(
        blocklist.snapshot(),
        embeddings=[speaker_profile],
        embedder_name=profile_embedder_name,
        voice_id=voice_id,
        stage=ScreeningStage.SYNTHESIS,
    )


def check_text(rules: TextRules, text: str) -> str:
    return rules.check(text)


def admitted_event(
    *,
    principal: Principal,
    request: SynthesisRequest,
    grant: Grant,
    request_id: str,
    text: str,
    reference_sha256: tuple[str, ...],
    engine: EngineInfo,
) -> AuditEvent:
    return AuditEvent(
        action=Action.REQUEST_ADMITTED,
        decision=Decision.ALLOW,
        actor=actor_of(principal),
        subjects=Subjects(voice_id=request.voice_id, consent_id=grant.consent_id, request_id=request_id),
        digests=Digests(text_sha256=sha256_hex(text.encode()), reference_sha256=reference_sha256),
        engine=engine,
    )


def engine_info(description: EngineDescription) -> EngineInfo:
    """The engine as audit events name it: audit fields are plain tokens, so spaces and
    punctuation in a version string ("piper-tts 1.8.0, pyworld 0.3.5") become underscores."""

    def token(text: str) -> str:
        return re.sub(r"[^A-Za-z0-9._+-]+", "_", text).strip("_")[:64] or "unknown"

    return EngineInfo(name=token(description.name), version=token(description.version))


def payload_for(audit_identifier: int) -> bytes:
    """The watermark payload: the admitted event's audit identifier, big-endian."""
    if not 0 < audit_identifier <= MAX_AUDIT_IDENTIFIER:
        raise OverflowError(f"audit identifier {audit_identifier} does not fit the {PAYLOAD_BYTES}-byte payload")
    return audit_identifier.to_bytes(PAYLOAD_BYTES, "big")


def reserve_engine(executor: BoundedExecutor) -> EngineSlot:
    """A place in the engine's queue, taken before admission: a full queue refuses the request
    before it counts a consent use or writes `admitted`."""
    return executor.reserve()


def run_engine(
    executor: BoundedExecutor,
    *,
    request: SynthesisRequest,
    text: str,
    voice: VoiceProfile,
    cancel: CancelToken,
    slot: EngineSlot | None = None,
) -> EngineAudio:
    controls = SynthesisControls(speed=request.speed, pitch_semitones=request.pitch_semitones)
    try:
        return executor.synthesize(
            text=text, language=request.language, voice=voice, controls=controls, cancel=cancel, slot=slot
        )
    except EngineError:
        raise
    except Exception as exc:  # an engine bug is still a specific, audited engine failure
        raise EngineRequestFailed(f"the engine failed: {type(exc).__name__}") from exc


def watermark_output(stack: WatermarkStack, audio: EngineAudio, *, payload: bytes) -> MarkedAudio:
    return mark_output(stack, audio, payload=payload)


def check_encoded_mark(stack: WatermarkStack, body: bytes, *, encoding: str, payload: bytes) -> None:
    """A lossy codec must not have erased the mark: decode what the client will get and verify."""
    decoded = decode_audio(body)
    try:
        verify_keyed_mark(stack, decoded.samples, sample_rate=decoded.sample_rate, payload=payload)
    except WatermarkSelfCheckFailed as exc:
        raise WatermarkSelfCheckFailed(f"the keyed mark does not survive the {encoding} encoding: {exc}") from exc


def check_output_not_protected(
    blocklist: LiveBlocklist, *, embedder: SpeakerEmbedder, voice_id: str, marked: MarkedAudio
) -> None:
    embedding = embedder.embed(np.asarray(marked.samples), sample_rate=marked.sample_rate)
    screen(
        blocklist.snapshot(),
        embeddings=[embedding],
        embedder_name=embedder.name,
        voice_id=voice_id,
        stage=ScreeningStage.OUTPUT,
    )


def recheck_consent(session: Session, *, grant: Grant, now: datetime) -> None:
    """Revocation stops requests in flight: read the consent fresh before release."""
    recheck(session, grant=grant, now=now)


def released_event(
    *,
    principal: Principal,
    request: SynthesisRequest,
    grant: Grant,
    request_id: str,
    text: str,
    output_sha256: str,
    watermark_id: str,
    engine: EngineInfo,
) -> AuditEvent:
    return AuditEvent(
        action=Action.REQUEST_RELEASED,
        decision=Decision.ALLOW,
        actor=actor_of(principal),
        subjects=Subjects(voice_id=request.voice_id, consent_id=grant.consent_id, request_id=request_id),
        digests=Digests(text_sha256=sha256_hex(text.encode()), output_sha256=output_sha256),
        engine=engine,
        watermark_id=watermark_id,
    )


def refusal_event(
    *,
    principal: Principal,
    request: SynthesisRequest,
    request_id: str,
    action: Action,
    reason: str,
    consent_id: str | None = None,
    released_sha256: str | None = None,
    watermark_id: str | None = None,
) -> AuditEvent:
    """A request that ended without (all of) its audio. ``released_sha256`` and ``watermark_id``
    name what a stream had already sent, each chunk of it under its own `released` event."""
    return AuditEvent(
        action=action,
        # a client that left was not refused: the event records that the request ended
        decision=Decision.NONE if action is Action.REQUEST_CANCELLED else Decision.DENY,
        actor=actor_of(principal),
        reason=reason,
        subjects=Subjects(voice_id=request.voice_id, consent_id=consent_id, request_id=request_id),
        digests=Digests(text_sha256=sha256_hex(request.text.encode()), output_sha256=released_sha256),
        watermark_id=watermark_id,
    )
