"""A reviewer listens to the held voice's own references before deciding.

Only the owner's reference recordings, unsealed from the voice's store, are ever played here:
never engine output, so the review queue is no path to cloned audio. Each recording played is
recorded in the audit log, committed before the audio leaves, because hearing a person's voice
is itself an access to their data.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import soundfile
from sqlalchemy.orm import Session, sessionmaker

from audit.events import Action, Subjects
from audit.store import append_event
from gateway.auth import Principal
from gateway.errors import NotFound
from gateway.shared.events import decision_event
from gateway.shared.transactions import transaction
from policy.blocklist.models import ReviewItem
from policy.blocklist.review import get_review_item
from policy.consent.storage import load_samples

# A hold at enrollment names the challenge: that voice was never stored, so nothing is sealed.
UNSTORED_PREFIX = "challenge:"


def _references(session: Session, item: ReviewItem, *, key_encryption_key: bytes) -> list[tuple[np.ndarray, int]]:
    if item.voice_id.startswith(UNSTORED_PREFIX):
        return []
    return load_samples(session, voice_id=item.voice_id, kind="reference", key_encryption_key=key_encryption_key)


def list_references(session: Session, *, review_id: int, key_encryption_key: bytes) -> list[dict[str, Any]]:
    item = get_review_item(session, item_id=review_id)
    return [
        {"index": index, "seconds": round(len(audio) / rate, 2)}
        for index, (audio, rate) in enumerate(_references(session, item, key_encryption_key=key_encryption_key))
    ]


def play_reference(
    sessions: sessionmaker[Session], *, principal: Principal, review_id: int, index: int, key_encryption_key: bytes
) -> bytes:
    """One sealed reference as a WAV file, after its playing is logged."""
    with transaction(sessions) as session:
        item = get_review_item(session, item_id=review_id)
        references = _references(session, item, key_encryption_key=key_encryption_key)
        if not 0 <= index < len(references):
            raise NotFound(f"review item {review_id} has no reference {index}")
        append_event(
            session,
            event=decision_event(
                principal,
                action=Action.REVIEW_REFERENCES_PLAYED,
                reason="review_reference_played",
                subjects=Subjects(protected_entry_id=str(item.entry_id), voice_id=item.voice_id),
            ),
        )
        audio, rate = references[index]
    buffer = io.BytesIO()
    soundfile.write(buffer, audio, rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()
