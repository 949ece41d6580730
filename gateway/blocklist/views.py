"""Entries, review items and exceptions of the protected-speaker list as the API shows them."""

from __future__ import annotations

from typing import Any

from policy.blocklist.models import BlocklistException, ProtectedSpeaker, ReviewItem
from policy.blocklist.repository import EntryDetails


def entry_dict(entry: ProtectedSpeaker) -> dict[str, Any]:
    return {
        "entry_id": entry.id,
        "kind": entry.kind.value,
        "name": entry.name,
        "reason": entry.reason,
        "source": entry.source,
        "active": entry.active,
        "created_by": entry.created_by,
        "created_at": entry.created_at.isoformat(),
        "deactivated_by": entry.deactivated_by,
        "deactivated_at": entry.deactivated_at.isoformat() if entry.deactivated_at else None,
        "deactivation_reason": entry.deactivation_reason,
    }


def entry_details_dict(details: EntryDetails) -> dict[str, Any]:
    return {
        **entry_dict(details.entry),
        "samples": [
            {
                "audio_sha256": s.audio_sha256,
                "seconds": round(s.seconds, 2),
                "embedder": s.embedder_name,
                "added_by": s.added_by,
                "added_at": s.added_at.isoformat(),
            }
            for s in details.samples
        ],
        "exceptions": [
            {
                "voice_id": e.voice_id,
                "consent_grant_id": e.consent_grant_id,
                "note": e.note,
                "granted_by": e.granted_by,
                "granted_at": e.granted_at.isoformat(),
                "revoked_at": e.revoked_at.isoformat() if e.revoked_at else None,
            }
            for e in details.exceptions
        ],
    }


def review_dict(item: ReviewItem) -> dict[str, Any]:
    return {
        "review_id": item.id,
        "status": item.status.value,
        "stage": item.stage.value,
        "entry_id": item.entry_id,
        "voice_id": item.voice_id,
        "request_ref": item.request_ref,
        "requester_sub": item.requester_sub,
        "tenant": item.tenant,
        "normalized_score": item.normalized_score,
        "created_at": item.created_at.isoformat(),
        "decided_by": item.decided_by,
        "decided_at": item.decided_at.isoformat() if item.decided_at else None,
        "decision_note": item.decision_note,
    }


def granted_exception_dict(entry_id: int, row: BlocklistException) -> dict[str, Any]:
    return {
        "entry_id": entry_id,
        "voice_id": row.voice_id,
        "consent_grant_id": row.consent_grant_id,
        "consent_score": round(row.consent_score, 2),
        "granted_at": row.granted_at.isoformat(),
    }


def revoked_exception_dict(entry_id: int, row: BlocklistException) -> dict[str, Any]:
    assert row.revoked_at is not None
    return {"entry_id": entry_id, "voice_id": row.voice_id, "revoked_at": row.revoked_at.isoformat()}
