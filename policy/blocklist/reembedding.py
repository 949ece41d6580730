"""Moving the list to another speaker model: every entry is embedded again from its own samples.

The list keeps no audio, only each sample's sha256 (of the decoded samples), so the operator
supplies the original recordings and each is matched to the sample rows by that digest: nobody
can swap in a different voice for an entry while re-embedding it. An entry is moved only when
every one of its samples was supplied; the others stay on the old model, and the gateway, which
refuses to compare across models, will not load the list until they are re-embedded or
deactivated. The old model's rows stay for the record.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from policy.blocklist.models import ProtectedSpeaker, ProtectedSpeakerSample
from policy.blocklist.repository import AudioSample, encode_vector, rebuild_model, sample_digest
from policy.db import utcnow
from policy.speaker import SpeakerEmbedder


@dataclass
class ReembedReport:
    moved: list[int] = field(default_factory=list)  # entry ids now on the new model
    missing: dict[int, int] = field(default_factory=dict)  # entry id -> samples not supplied
    already: int = 0  # entries that were on the new model before


def reembed_entries(
    session: Session, *, embedder: SpeakerEmbedder, recordings: Sequence[AudioSample], actor: str
) -> ReembedReport:
    """Re-embed every active entry whose samples are all among ``recordings``; flushes only."""
    by_digest = {sample_digest(r.audio): r for r in recordings}
    report = ReembedReport()
    entries = session.scalars(
        select(ProtectedSpeaker).where(ProtectedSpeaker.active.is_(True)).order_by(ProtectedSpeaker.id)
    ).all()
    for entry in entries:
        if entry.embedder_name == embedder.name:
            report.already += 1
            continue
        samples = session.scalars(
            select(ProtectedSpeakerSample).where(
                ProtectedSpeakerSample.entry_id == entry.id,
                ProtectedSpeakerSample.embedder_name == entry.embedder_name,
            )
        ).all()
        absent = [s for s in samples if s.audio_sha256 not in by_digest]
        if absent or not samples:
            report.missing[entry.id] = len(absent)
            continue
        # Embed all first: an unusable recording leaves this entry untouched.
        vectors = [
            embedder.embed(by_digest[s.audio_sha256].audio, sample_rate=by_digest[s.audio_sha256].sample_rate)
            for s in samples
        ]
        now = utcnow()
        for sample, vector in zip(samples, vectors, strict=True):
            session.add(
                ProtectedSpeakerSample(
                    entry_id=entry.id,
                    embedder_name=embedder.name,
                    embedding=encode_vector(vector),
                    audio_sha256=sample.audio_sha256,
                    seconds=sample.seconds,
                    added_by=actor,
                    added_at=now,
                )
            )
        session.flush()
        rebuild_model(session, entry=entry, embedder=embedder)
        report.moved.append(entry.id)
    return report
