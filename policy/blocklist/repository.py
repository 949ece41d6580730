"""Storing the protected-speaker list: entries, samples, cohort, exceptions and the version row.

Every function takes a ``Session`` and only flushes; the gateway commits, together with the
audit event that records the change. Every change to what the index holds bumps
``blocklist_state.version`` in the same transaction, which is how other processes notice it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast

import numpy as np
from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session

from policy.blocklist.matching import Cohort, Normalization, normalized_pair_score, speaker_model, unit_rows
from policy.blocklist.models import (
    STATE_ROW_ID,
    BlocklistException,
    BlocklistState,
    CohortSpeaker,
    EntryKind,
    ProtectedSpeaker,
    ProtectedSpeakerSample,
)
from policy.db import utcnow
from policy.errors import (
    BlocklistExceptionRefused,
    BlocklistMisconfigured,
    EmbeddingInvalid,
    OptOutRefused,
    PolicyError,
    ProtectedSpeakerInactive,
    ProtectedSpeakerInvalid,
    ProtectedSpeakerNotFound,
)
from policy.speaker import SpeakerEmbedder

MAX_SAMPLES_PER_REQUEST = 20
MAX_TEXT = {"name": 200, "source": 500, "reason": 4000}


@dataclass(frozen=True)
class AudioSample:
    """One recording of a protected speaker (mono float waveform, explicit rate)."""

    audio: np.ndarray
    sample_rate: int


@dataclass(frozen=True)
class EntryDetails:
    entry: ProtectedSpeaker
    samples: list[ProtectedSpeakerSample]
    exceptions: list[BlocklistException]


class SpokenChallengeVerifier(Protocol):
    """The consent domain's spoken-challenge check, bound to one issued challenge: raises a
    ``PolicyError`` unless ``audio`` is a fresh reading of that challenge."""

    def verify(self, *, audio: np.ndarray, sample_rate: int) -> None: ...


def encode_vector(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype="<f4").tobytes()


def decode_vector(data: bytes, *, dimension: int) -> np.ndarray:
    vector = np.frombuffer(data, dtype="<f4")
    if vector.shape != (dimension,):
        raise EmbeddingInvalid(f"stored embedding has {vector.size} values, expected {dimension}")
    return vector.astype(np.float32)


def sample_digest(audio: np.ndarray) -> str:
    """What the list keeps of a sample's audio: the sha256 of its decoded samples, so a later
    dispute, or a move to another model, can show which recording was enrolled."""
    return hashlib.sha256(np.ascontiguousarray(audio).tobytes()).hexdigest()


def bump_version(session: Session) -> None:
    # One atomic UPDATE: concurrent writers each add one, nobody's change is lost.
    result = session.execute(
        update(BlocklistState)
        .where(BlocklistState.id == STATE_ROW_ID)
        .values(version=BlocklistState.version + 1, updated_at=utcnow())
    )
    if cast("CursorResult[Any]", result).rowcount != 1:
        raise BlocklistMisconfigured("blocklist_state row missing: run the database migrations")


def current_version(session: Session) -> int:
    version = session.scalar(select(BlocklistState.version).where(BlocklistState.id == STATE_ROW_ID))
    if version is None:
        raise BlocklistMisconfigured("blocklist_state row missing: run the database migrations")
    return int(version)


def _text(value: str, *, field: str) -> str:
    cleaned = (value or "").strip()
    if not cleaned:
        raise ProtectedSpeakerInvalid(f"{field} must not be empty")
    if len(cleaned) > MAX_TEXT[field]:
        raise ProtectedSpeakerInvalid(f"{field} is longer than {MAX_TEXT[field]} characters")
    return cleaned


def _embed(embedder: SpeakerEmbedder, samples: Sequence[AudioSample]) -> list[tuple[np.ndarray, AudioSample]]:
    """Embed every sample before anything is written: one unusable sample rejects the request."""
    if not samples:
        raise EmbeddingInvalid("at least one audio sample is needed")
    if len(samples) > MAX_SAMPLES_PER_REQUEST:
        raise EmbeddingInvalid(f"at most {MAX_SAMPLES_PER_REQUEST} samples per request")
    return [(embedder.embed(s.audio, sample_rate=s.sample_rate), s) for s in samples]


def _store_samples(
    session: Session,
    *,
    entry: ProtectedSpeaker,
    embedder: SpeakerEmbedder,
    embedded: list[tuple[np.ndarray, AudioSample]],
    actor: str,
) -> None:
    now = utcnow()
    for vector, sample in embedded:
        session.add(
            ProtectedSpeakerSample(
                entry_id=entry.id,
                embedder_name=embedder.name,
                embedding=encode_vector(vector),
                audio_sha256=hashlib.sha256(
                    np.ascontiguousarray(sample.audio).tobytes()
                ).hexdigest(),  # see reembedding
                seconds=float(sample.audio.size) / sample.sample_rate,
                added_by=actor,
                added_at=now,
            )
        )
    session.flush()
    rebuild_model(session, entry=entry, embedder=embedder)


def rebuild_model(session: Session, *, entry: ProtectedSpeaker, embedder: SpeakerEmbedder) -> None:
    rows = session.scalars(
        select(ProtectedSpeakerSample.embedding).where(
            ProtectedSpeakerSample.entry_id == entry.id,
            ProtectedSpeakerSample.embedder_name == embedder.name,
        )
    ).all()
    vectors = np.stack([decode_vector(row, dimension=embedder.dimension) for row in rows])
    entry.model = encode_vector(speaker_model(vectors))
    entry.embedder_name = embedder.name
    bump_version(session)
    session.flush()


def add_protected_speaker(
    session: Session,
    *,
    embedder: SpeakerEmbedder,
    name: str,
    reason: str,
    source: str,
    samples: Sequence[AudioSample],
    actor: str,
) -> ProtectedSpeaker:
    """Put a speaker on the list (admin); the model is the mean of all samples' embeddings."""
    fields = {
        "name": _text(name, field="name"),
        "reason": _text(reason, field="reason"),
        "source": _text(source, field="source"),
    }
    embedded = _embed(embedder, samples)
    entry = ProtectedSpeaker(
        kind=EntryKind.LISTED,
        **fields,
        embedder_name=embedder.name,
        model=b"",
        active=True,
        created_by=actor,
        created_at=utcnow(),
    )
    session.add(entry)
    session.flush()
    _store_samples(session, entry=entry, embedder=embedder, embedded=embedded, actor=actor)
    return entry


def add_samples(
    session: Session, *, entry_id: int, embedder: SpeakerEmbedder, samples: Sequence[AudioSample], actor: str
) -> ProtectedSpeaker:
    entry = _active_entry(session, entry_id=entry_id)
    _store_samples(session, entry=entry, embedder=embedder, embedded=_embed(embedder, samples), actor=actor)
    return entry


def opt_out_own_voice(
    session: Session,
    *,
    embedder: SpeakerEmbedder,
    verifier: SpokenChallengeVerifier,
    owner_iss: str,
    owner_sub: str,
    display_name: str,
    audio: np.ndarray,
    sample_rate: int,
) -> ProtectedSpeaker:
    """An owner puts their own voice on the list.

    The recording must pass the same spoken-challenge check as consent, and it is that very
    recording which is enrolled: nobody can opt out someone else's voice with a replayed or
    synthetic clip of it, or opt out a voice other than the one that spoke the challenge.
    """
    try:
        verifier.verify(audio=audio, sample_rate=sample_rate)
    except PolicyError as exc:
        raise OptOutRefused(f"opt-out recording did not pass the spoken challenge: {exc}") from exc
    embedded = _embed(embedder, [AudioSample(audio=audio, sample_rate=sample_rate)])
    actor = f"{owner_iss}|{owner_sub}"
    existing = session.scalars(
        select(ProtectedSpeaker).where(
            ProtectedSpeaker.kind == EntryKind.OPT_OUT,
            ProtectedSpeaker.active.is_(True),
            ProtectedSpeaker.owner_iss == owner_iss,
            ProtectedSpeaker.owner_sub == owner_sub,
        )
    ).first()
    if existing is None:
        existing = ProtectedSpeaker(
            kind=EntryKind.OPT_OUT,
            name=_text(display_name, field="name"),
            reason="the owner of this voice opted out of cloning",
            source="verified spoken challenge",
            owner_iss=owner_iss,
            owner_sub=owner_sub,
            embedder_name=embedder.name,
            model=b"",
            active=True,
            created_by=actor,
            created_at=utcnow(),
        )
        session.add(existing)
        session.flush()
    _store_samples(session, entry=existing, embedder=embedder, embedded=embedded, actor=actor)
    return existing


def _entry(session: Session, *, entry_id: int) -> ProtectedSpeaker:
    entry = session.get(ProtectedSpeaker, entry_id)
    if entry is None:
        raise ProtectedSpeakerNotFound(f"no protected speaker {entry_id}")
    return entry


def _active_entry(session: Session, *, entry_id: int) -> ProtectedSpeaker:
    entry = _entry(session, entry_id=entry_id)
    if not entry.active:
        raise ProtectedSpeakerInactive(f"protected speaker {entry_id} is deactivated")
    return entry


def deactivate_protected_speaker(session: Session, *, entry_id: int, actor: str, reason: str) -> ProtectedSpeaker:
    """Soft removal: the row and its samples stay for the record; the index drops it."""
    entry = _active_entry(session, entry_id=entry_id)
    entry.active = False
    entry.deactivated_by = actor
    entry.deactivated_at = utcnow()
    entry.deactivation_reason = _text(reason, field="reason")
    bump_version(session)
    session.flush()
    return entry


def list_protected_speakers(session: Session, *, include_inactive: bool = False) -> list[ProtectedSpeaker]:
    query = select(ProtectedSpeaker).order_by(ProtectedSpeaker.id)
    if not include_inactive:
        query = query.where(ProtectedSpeaker.active.is_(True))
    return list(session.scalars(query))


def inspect_protected_speaker(session: Session, *, entry_id: int) -> EntryDetails:
    entry = _entry(session, entry_id=entry_id)
    samples = session.scalars(
        select(ProtectedSpeakerSample)
        .where(ProtectedSpeakerSample.entry_id == entry_id)
        .order_by(ProtectedSpeakerSample.id)
    ).all()
    exceptions = session.scalars(
        select(BlocklistException).where(BlocklistException.entry_id == entry_id).order_by(BlocklistException.id)
    ).all()
    return EntryDetails(entry=entry, samples=list(samples), exceptions=list(exceptions))


def add_cohort_speaker(
    session: Session, *, embedder: SpeakerEmbedder, label: str, audio: np.ndarray, sample_rate: int, actor: str
) -> CohortSpeaker:
    """Add a speaker known NOT to be protected to the normalisation cohort (admin only: see
    matching.py for why users must never be able to fill the cohort)."""
    vector = embedder.embed(audio, sample_rate=sample_rate)
    return add_cohort_embedding(session, embedder_name=embedder.name, label=label, embedding=vector, actor=actor)


def add_cohort_embedding(
    session: Session, *, embedder_name: str, label: str, embedding: np.ndarray, actor: str
) -> CohortSpeaker:
    vector = unit_rows(
        np.asarray(embedding).reshape(1, -1), dimension=np.asarray(embedding).size, what="cohort embedding"
    )[0]
    row = CohortSpeaker(
        label=_text(label, field="name"),
        embedder_name=embedder_name,
        embedding=encode_vector(vector),
        added_by=actor,
        added_at=utcnow(),
    )
    session.add(row)
    bump_version(session)
    session.flush()
    return row


def load_cohort_embeddings(session: Session, *, embedder_name: str, dimension: int) -> np.ndarray:
    rows = session.scalars(select(CohortSpeaker.embedding).where(CohortSpeaker.embedder_name == embedder_name)).all()
    if not rows:
        return np.zeros((0, dimension), dtype=np.float32)
    return np.stack([decode_vector(row, dimension=dimension) for row in rows])


def grant_exception(
    session: Session,
    *,
    cohort: Cohort,
    deny_threshold: float,
    normalization: Normalization = "as-norm",
    entry_id: int,
    voice_id: str,
    consent_grant_id: str,
    consent_speaker_embedding: np.ndarray,
    embedder_name: str,
    note: str,
    actor: str,
) -> BlocklistException:
    """Let exactly one voice past one entry (admin), when the protected person consented.

    ``consent_speaker_embedding`` is the embedding of the verified consent recording behind
    ``consent_grant_id`` (the gateway takes both from the consent domain). It must match the
    entry at the deny threshold: the person who consented has to *be* the protected person,
    otherwise anyone's consent could unlock a public figure's voice.
    """
    entry = _active_entry(session, entry_id=entry_id)
    if entry.embedder_name != embedder_name:
        raise BlocklistExceptionRefused("consent embedding comes from a different speaker model than the entry")
    if not voice_id or not consent_grant_id:
        raise BlocklistExceptionRefused("an exception needs a voice id and the protected person's consent grant")
    _, score = normalized_pair_score(
        cohort,
        normalization,
        entry_model=decode_vector(entry.model, dimension=cohort.dimension),
        probe=consent_speaker_embedding,
    )
    if score < deny_threshold:
        raise BlocklistExceptionRefused(
            f"the consenting speaker does not match protected speaker {entry_id} "
            f"(normalised score {score:.2f} < {deny_threshold:.2f})"
        )
    existing = session.scalars(
        select(BlocklistException).where(
            BlocklistException.entry_id == entry_id, BlocklistException.voice_id == voice_id
        )
    ).first()
    if existing is not None and existing.revoked_at is None:
        raise BlocklistExceptionRefused(f"voice {voice_id} already has an exception for entry {entry_id}")
    if existing is None:
        existing = BlocklistException(entry_id=entry_id, voice_id=voice_id)
        session.add(existing)
    existing.consent_grant_id = consent_grant_id
    existing.consent_score = score
    existing.note = _text(note, field="reason")
    existing.granted_by, existing.granted_at = actor, utcnow()
    existing.revoked_by, existing.revoked_at = None, None
    bump_version(session)
    session.flush()
    return existing


def revoke_exception(session: Session, *, entry_id: int, voice_id: str, actor: str) -> BlocklistException:
    existing = session.scalars(
        select(BlocklistException).where(
            BlocklistException.entry_id == entry_id,
            BlocklistException.voice_id == voice_id,
            BlocklistException.revoked_at.is_(None),
        )
    ).first()
    if existing is None:
        raise ProtectedSpeakerNotFound(f"no active exception for voice {voice_id} on entry {entry_id}")
    existing.revoked_by, existing.revoked_at = actor, utcnow()
    bump_version(session)
    session.flush()
    return existing


def transfer_exceptions(session: Session, *, from_voice_id: str, to_voice_id: str, actor: str) -> int:
    """Move active exceptions granted for a provisional key (``challenge:<id>``, before the voice
    existed) to the voice that enrolment created; returns how many moved."""
    if not from_voice_id or not to_voice_id or from_voice_id == to_voice_id:
        raise ProtectedSpeakerInvalid("transfer needs two different voice ids")
    moved = 0
    for row in session.scalars(
        select(BlocklistException).where(
            BlocklistException.voice_id == from_voice_id, BlocklistException.revoked_at.is_(None)
        )
    ):
        row.voice_id = to_voice_id
        row.note = f"{row.note} (moved from {from_voice_id} by {actor})"
        moved += 1
    if moved:
        bump_version(session)
    session.flush()
    return moved
