"""The typed, versioned audit event and its canonical bytes.

An event records who did what to which subject, the decision and its reason code, and hashes of
the inputs and outputs. It deliberately has no free-text field: no secrets, no request text, no
audio and no speaker embeddings can enter the log, only identifiers and SHA-256 digests, so that
erasing a voice's personal data elsewhere never requires touching (and breaking) the tree.
The bytes that are hashed into the Merkle log are ``canonical_json(event.to_dict())``.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from audit.canonical import canonical_json
from audit.errors import InvalidAuditEvent

SCHEMA_VERSION = 1
MAX_ENTRY_BYTES = 8192

_IDENTIFIER = re.compile(r"[A-Za-z0-9._:@/+=~|#-]{1,200}")
_ROLE = re.compile(r"[a-z][a-z0-9_]{0,31}")
_REASON = re.compile(r"[a-z][a-z0-9_]{0,63}")
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_ENGINE_FIELD = re.compile(r"[A-Za-z0-9._+-]{1,64}")
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
_MAX_REFERENCES = 16


class Action(StrEnum):
    REQUEST_ADMITTED = "request.admitted"
    REQUEST_DENIED = "request.denied"
    REQUEST_RELEASED = "request.released"
    REQUEST_FAILED = "request.failed"
    REQUEST_CANCELLED = "request.cancelled"
    # One event for many requests refused by one rate limit in one window (see `Aggregate`).
    REQUEST_RATE_LIMITED = "request.rate_limited"
    # the replica running the request ended without an outcome; another closed it
    REQUEST_ABANDONED = "request.abandoned"
    CONSENT_CHALLENGE_ISSUED = "consent.challenge_issued"
    CONSENT_GRANTED = "consent.granted"
    CONSENT_DENIED = "consent.denied"
    CONSENT_REVOKED = "consent.revoked"
    VOICE_ENROLLED = "voice.enrolled"
    VOICE_ERASED = "voice.erased"
    PROTECTED_SPEAKER_ADDED = "protected_speaker.added"
    PROTECTED_SPEAKER_REMOVED = "protected_speaker.removed"
    PROTECTED_SPEAKER_EXCEPTION_GRANTED = "protected_speaker.exception_granted"
    PROTECTED_SPEAKER_EXCEPTION_REVOKED = "protected_speaker.exception_revoked"
    REVIEW_APPROVED = "review.approved"
    REVIEW_DENIED = "review.denied"
    REVIEW_REFERENCES_PLAYED = "review.references_played"  # an admin listened to a held voice's references
    AUDIT_EXPORTED = "audit.exported"


class Decision(StrEnum):
    ALLOW = "allow"
    DENY = "deny"
    # Records of something that happened without a yes/no decision (an export, an erasure).
    NONE = "none"


def _check(pattern: re.Pattern[str], value: Any, name: str, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise InvalidAuditEvent(f"{name} must match {pattern.pattern}, got {value!r:.80}")


def format_time(moment: datetime) -> str:
    if not isinstance(moment, datetime) or moment.tzinfo is None:
        raise InvalidAuditEvent("event time must be a timezone-aware datetime")
    return moment.astimezone(UTC).strftime(_TIME_FORMAT)


def parse_time(text: Any) -> datetime:
    if not isinstance(text, str):
        raise InvalidAuditEvent("event time must be a string")
    try:
        return datetime.strptime(text, _TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError as exc:
        raise InvalidAuditEvent(f"event time {text!r:.40} is not YYYY-MM-DDTHH:MM:SS.ffffffZ") from exc


def _strict_keys(data: Any, allowed: set[str], name: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise InvalidAuditEvent(f"{name} must be an object")
    unknown = set(data) - allowed
    if unknown:
        raise InvalidAuditEvent(f"{name} has unknown fields {sorted(unknown)}")
    return data


@dataclass(frozen=True, kw_only=True)
class Actor:
    """Who acted: the token's issuer and subject, its role and tenant."""

    iss: str
    sub: str
    role: str
    tenant: str | None = None

    def __post_init__(self) -> None:
        _check(_IDENTIFIER, self.iss, "actor.iss")
        _check(_IDENTIFIER, self.sub, "actor.sub")
        _check(_ROLE, self.role, "actor.role")
        _check(_IDENTIFIER, self.tenant, "actor.tenant", optional=True)

    def to_dict(self) -> dict[str, Any]:
        return {"iss": self.iss, "sub": self.sub, "role": self.role, "tenant": self.tenant}

    @classmethod
    def from_dict(cls, data: Any) -> Actor:
        data = _strict_keys(data, {"iss", "sub", "role", "tenant"}, "actor")
        return cls(iss=data.get("iss"), sub=data.get("sub"), role=data.get("role"), tenant=data.get("tenant"))


@dataclass(frozen=True, kw_only=True)
class Subjects:
    """Identifiers of what the action concerns (never names or recordings)."""

    voice_id: str | None = None
    consent_id: str | None = None
    request_id: str | None = None
    protected_entry_id: str | None = None

    def __post_init__(self) -> None:
        for name in ("voice_id", "consent_id", "request_id", "protected_entry_id"):
            _check(_IDENTIFIER, getattr(self, name), f"subjects.{name}", optional=True)

    def to_dict(self) -> dict[str, Any]:
        return {
            "voice_id": self.voice_id,
            "consent_id": self.consent_id,
            "request_id": self.request_id,
            "protected_entry_id": self.protected_entry_id,
        }

    @classmethod
    def from_dict(cls, data: Any) -> Subjects:
        data = _strict_keys(data, {"voice_id", "consent_id", "request_id", "protected_entry_id"}, "subjects")
        return cls(**data)


@dataclass(frozen=True, kw_only=True)
class Digests:
    """SHA-256 (lower-case hex) of the request text, the reference audio files and the output."""

    text_sha256: str | None = None
    reference_sha256: tuple[str, ...] = ()
    output_sha256: str | None = None

    def __post_init__(self) -> None:
        _check(_SHA256_HEX, self.text_sha256, "digests.text_sha256", optional=True)
        _check(_SHA256_HEX, self.output_sha256, "digests.output_sha256", optional=True)
        if not isinstance(self.reference_sha256, tuple) or len(self.reference_sha256) > _MAX_REFERENCES:
            raise InvalidAuditEvent(f"digests.reference_sha256 must be a tuple of at most {_MAX_REFERENCES}")
        for digest in self.reference_sha256:
            _check(_SHA256_HEX, digest, "digests.reference_sha256[]")

    def to_dict(self) -> dict[str, Any]:
        return {
            "text_sha256": self.text_sha256,
            "reference_sha256": list(self.reference_sha256),
            "output_sha256": self.output_sha256,
        }

    @classmethod
    def from_dict(cls, data: Any) -> Digests:
        data = _strict_keys(data, {"text_sha256", "reference_sha256", "output_sha256"}, "digests")
        references = data.get("reference_sha256", [])
        if not isinstance(references, list):
            raise InvalidAuditEvent("digests.reference_sha256 must be an array")
        return cls(
            text_sha256=data.get("text_sha256"),
            reference_sha256=tuple(references),
            output_sha256=data.get("output_sha256"),
        )


@dataclass(frozen=True, kw_only=True)
class EngineInfo:
    name: str
    version: str

    def __post_init__(self) -> None:
        _check(_ENGINE_FIELD, self.name, "engine.name")
        _check(_ENGINE_FIELD, self.version, "engine.version")

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version}

    @classmethod
    def from_dict(cls, data: Any) -> EngineInfo:
        data = _strict_keys(data, {"name", "version"}, "engine")
        return cls(name=data.get("name"), version=data.get("version"))


@dataclass(frozen=True, kw_only=True)
class Aggregate:
    """An event that stands for ``count`` requests between ``since`` and ``until``: a flood of
    refusals is recorded as one event per limit and window, not one per request."""

    count: int
    since: datetime
    until: datetime

    def __post_init__(self) -> None:
        if not isinstance(self.count, int) or isinstance(self.count, bool) or not 1 <= self.count < 2**53:
            raise InvalidAuditEvent("aggregate.count must be a positive integer")
        format_time(self.since)
        format_time(self.until)
        if self.until < self.since:
            raise InvalidAuditEvent("aggregate.until is before aggregate.since")

    def to_dict(self) -> dict[str, Any]:
        return {"count": self.count, "since": format_time(self.since), "until": format_time(self.until)}

    @classmethod
    def from_dict(cls, data: Any) -> Aggregate:
        data = _strict_keys(data, {"count", "since", "until"}, "aggregate")
        return cls(count=data.get("count"), since=parse_time(data.get("since")), until=parse_time(data.get("until")))


_fast_canonical = json.JSONEncoder(ensure_ascii=False, allow_nan=False, sort_keys=True, separators=(",", ":")).encode


def _now() -> datetime:
    return datetime.now(UTC)


def _new_event_id() -> str:
    return str(uuid.uuid4())


@dataclass(frozen=True, kw_only=True)
class AuditEvent:
    """One record of the log. ``event_id`` is what the watermark payload refers to."""

    action: Action
    decision: Decision
    actor: Actor
    reason: str | None = None
    subjects: Subjects = field(default_factory=Subjects)
    digests: Digests = field(default_factory=Digests)
    engine: EngineInfo | None = None
    watermark_id: str | None = None
    aggregate: Aggregate | None = None
    time: datetime = field(default_factory=_now)
    event_id: str = field(default_factory=_new_event_id)

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "action", Action(self.action))
            object.__setattr__(self, "decision", Decision(self.decision))
        except ValueError as exc:
            raise InvalidAuditEvent(str(exc)) from exc
        for name, kind in (("actor", Actor), ("subjects", Subjects), ("digests", Digests)):
            if not isinstance(getattr(self, name), kind):
                raise InvalidAuditEvent(f"{name} must be a {kind.__name__}")
        if self.engine is not None and not isinstance(self.engine, EngineInfo):
            raise InvalidAuditEvent("engine must be an EngineInfo or None")
        if self.aggregate is not None and not isinstance(self.aggregate, Aggregate):
            raise InvalidAuditEvent("aggregate must be an Aggregate or None")
        _check(_REASON, self.reason, "reason", optional=True)
        _check(_IDENTIFIER, self.watermark_id, "watermark_id", optional=True)
        _check(_IDENTIFIER, self.event_id, "event_id")
        format_time(self.time)
        if self.decision is Decision.DENY and self.reason is None:
            raise InvalidAuditEvent("a denial must carry a reason code")

    def to_dict(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "v": SCHEMA_VERSION,
            "event_id": self.event_id,
            "time": format_time(self.time),
            "action": self.action.value,
            "decision": self.decision.value,
            "reason": self.reason,
            "actor": self.actor.to_dict(),
            "subjects": self.subjects.to_dict(),
            "digests": self.digests.to_dict(),
            "engine": None if self.engine is None else self.engine.to_dict(),
            "watermark_id": self.watermark_id,
        }
        # Only aggregated events have the member, so every other event keeps its bytes.
        if self.aggregate is not None:
            entry["aggregate"] = self.aggregate.to_dict()
        return entry

    def canonical_bytes(self) -> bytes:
        """The entry hashed into the log: RFC 8785 canonical JSON of ``to_dict()``.

        Every member name is ASCII and every value was validated in ``__post_init__`` (ASCII
        strings, small ints, null, arrays), and for such values ``json.dumps`` with sorted keys
        produces exactly the RFC 8785 bytes; it is used because this runs on the request path.
        ``test_fast_encoding_equals_the_general_canonicalizer`` holds the two together.
        """
        entry = _fast_canonical(self.to_dict()).encode("utf-8")
        if len(entry) > MAX_ENTRY_BYTES:
            raise InvalidAuditEvent(f"event encodes to {len(entry)} bytes, more than {MAX_ENTRY_BYTES}")
        return entry

    @classmethod
    def from_dict(cls, data: Any) -> AuditEvent:
        data = _strict_keys(
            data,
            {
                "v",
                "event_id",
                "time",
                "action",
                "decision",
                "reason",
                "actor",
                "subjects",
                "digests",
                "engine",
                "watermark_id",
                "aggregate",
            },
            "event",
        )
        if data.get("v") != SCHEMA_VERSION:
            raise InvalidAuditEvent(f"unsupported event schema version {data.get('v')!r}")
        engine = data.get("engine")
        aggregate = data.get("aggregate")
        if "aggregate" in data and aggregate is None:
            raise InvalidAuditEvent("aggregate, when present, must be an object")  # one canonical form
        return cls(
            event_id=data.get("event_id"),
            time=parse_time(data.get("time")),
            action=data.get("action"),
            decision=data.get("decision"),
            reason=data.get("reason"),
            actor=Actor.from_dict(data.get("actor")),
            subjects=Subjects.from_dict(data.get("subjects", {})),
            digests=Digests.from_dict(data.get("digests", {})),
            engine=None if engine is None else EngineInfo.from_dict(engine),
            watermark_id=data.get("watermark_id"),
            aggregate=None if aggregate is None else Aggregate.from_dict(aggregate),
        )

    @classmethod
    def from_canonical_bytes(cls, entry: bytes) -> AuditEvent:
        """Parse a log entry and insist that it is in canonical form (so its hash is unique)."""
        if len(entry) > MAX_ENTRY_BYTES:
            raise InvalidAuditEvent(f"entry of {len(entry)} bytes is larger than {MAX_ENTRY_BYTES}")
        try:
            data = json.loads(entry)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidAuditEvent(f"entry is not JSON: {exc}") from exc
        event = cls.from_dict(data)
        if canonical_json(event.to_dict()) != entry:
            raise InvalidAuditEvent("entry is not in canonical form")
        return event
