"""Screening voices against the list: at enrolment (references), at every synthesis (the voice's
references again) and on every output before release.

``screen`` raises ``SpeakerProtected`` (deny) or ``SpeakerReviewRequired`` (held for an admin)
and returns only when every embedding is allowed. Exceptions and approved reviews are looked up
per voice: an exception for (entry, voice) skips that entry for that voice only; an approved
review clears the review band of that (entry, voice) pair but never a deny.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from policy.blocklist.index import BlocklistIndex
from policy.blocklist.matching import BlocklistDecision, Decision
from policy.blocklist.models import ScreeningStage
from policy.errors import BlocklistMisconfigured, EmbeddingInvalid, SpeakerProtected, SpeakerReviewRequired
from policy.speaker import SpeakerEmbedder

_SEVERITY = {Decision.ALLOW: 0, Decision.REVIEW: 1, Decision.DENY: 2}


@dataclass(frozen=True)
class BlocklistSnapshot:
    """The index plus the per-voice exceptions and review clearances of one list version."""

    index: BlocklistIndex
    exceptions: Mapping[str, frozenset[int]] = field(default_factory=dict)
    clearances: Mapping[str, frozenset[int]] = field(default_factory=dict)

    @property
    def version(self) -> int:
        return self.index.version


@dataclass(frozen=True)
class ScreeningResult:
    stage: ScreeningStage
    voice_id: str
    decision: BlocklistDecision  # the highest-scoring decision over the screened embeddings


def decide_for_voice(snapshot: BlocklistSnapshot, *, embedding: np.ndarray, voice_id: str) -> BlocklistDecision:
    """One embedding's decision for one voice, honouring its exceptions and clearances."""
    exempt = set(snapshot.exceptions.get(voice_id, frozenset()))
    cleared = snapshot.clearances.get(voice_id, frozenset())
    # Each pass either returns or exempts one more cleared entry, so this ends.
    for _ in range(len(cleared) + 1):
        decision = snapshot.index.check(embedding, exempt_entry_ids=exempt)
        if decision.decision is Decision.REVIEW and decision.entry_id in cleared:
            exempt.add(decision.entry_id)
            continue
        return decision
    return decision


def screen(
    snapshot: BlocklistSnapshot,
    *,
    embeddings: Sequence[np.ndarray],
    embedder_name: str,
    voice_id: str,
    stage: ScreeningStage,
) -> ScreeningResult:
    """Check every embedding (all references of a voice, or one output); raise on deny/review."""
    if snapshot is None:
        raise BlocklistMisconfigured("no blocklist loaded")
    if embedder_name != snapshot.index.embedder_name:
        raise EmbeddingInvalid(
            f"embeddings come from {embedder_name}, the list holds {snapshot.index.embedder_name} embeddings"
        )
    if not voice_id:
        raise EmbeddingInvalid("screening needs the voice id the audio belongs to")
    if len(embeddings) == 0:
        raise EmbeddingInvalid("nothing to screen: no embeddings given")
    worst: BlocklistDecision | None = None
    for embedding in embeddings:
        decision = decide_for_voice(snapshot, embedding=embedding, voice_id=voice_id)
        if worst is None or _more_severe(decision, worst):
            worst = decision
    if worst is None:  # unreachable after the length check; fail closed regardless
        raise EmbeddingInvalid("nothing was screened")
    if worst.decision is Decision.DENY:
        raise SpeakerProtected(
            f"the {stage.value} voice matches a protected speaker",
            entry_id=worst.entry_id,
            normalized_score=worst.normalized_score,
        )
    if worst.decision is Decision.REVIEW:
        raise SpeakerReviewRequired(
            f"the {stage.value} voice is close to a protected speaker and is held for review",
            entry_id=worst.entry_id,
            raw_score=worst.raw_score,
            normalized_score=worst.normalized_score,
            stage=stage.value,
        )
    return ScreeningResult(stage=stage, voice_id=voice_id, decision=worst)


class _Audio(Protocol):
    audio: np.ndarray
    sample_rate: int


def reference_check(
    *,
    snapshot: Callable[[], BlocklistSnapshot],
    embedder: SpeakerEmbedder,
    voice_id: str,
    stage: ScreeningStage = ScreeningStage.REFERENCE,
) -> Callable[[Sequence[_Audio]], None]:
    """The consent domain's ``check_protected`` hook: embeds each recording and screens them all.

    At enrolment the voice has no id yet; the gateway passes ``voice_id="challenge:<id>"`` so an
    exception granted for that consent challenge applies, then moves it to the new voice with
    ``repository.transfer_exceptions``.
    """

    def check(recordings: Sequence[_Audio]) -> None:
        embeddings = [embedder.embed(r.audio, sample_rate=r.sample_rate) for r in recordings]
        screen(snapshot(), embeddings=embeddings, embedder_name=embedder.name, voice_id=voice_id, stage=stage)

    return check


def _more_severe(candidate: BlocklistDecision, current: BlocklistDecision) -> bool:
    if _SEVERITY[candidate.decision] != _SEVERITY[current.decision]:
        return _SEVERITY[candidate.decision] > _SEVERITY[current.decision]
    return (candidate.normalized_score or -np.inf) > (current.normalized_score or -np.inf)
