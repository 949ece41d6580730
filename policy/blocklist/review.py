"""The review queue: requests scored between the review and deny thresholds wait for an admin.

No audio is released while an item is pending. An approval clears the review band for that
(entry, voice) pair from then on (the gateway re-runs the request); it never overrides a deny.
Every step is a row change the gateway records as an audit event in the same transaction.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from policy.blocklist.models import ReviewItem, ReviewStatus, ScreeningStage
from policy.blocklist.repository import bump_version
from policy.db import utcnow
from policy.errors import ReviewAlreadyDecided, ReviewItemNotFound, SpeakerReviewRequired


def hold_for_review(
    session: Session,
    *,
    held: SpeakerReviewRequired,
    voice_id: str,
    request_ref: str,
    requester_iss: str,
    requester_sub: str,
    tenant: str | None,
) -> ReviewItem:
    """Queue the request that ``screen`` refused with ``held``; sets ``held.review_item_id``.

    The gateway calls this from its handler for ``SpeakerReviewRequired`` and commits it even
    though the request itself failed: the hold is the outcome of the request.
    """
    if held.entry_id is None or held.normalized_score is None or held.stage is None:
        raise ReviewItemNotFound("the review hold carries no entry, score or stage")
    item = ReviewItem(
        status=ReviewStatus.PENDING,
        stage=ScreeningStage(held.stage),
        entry_id=held.entry_id,
        voice_id=voice_id,
        request_ref=request_ref,
        requester_iss=requester_iss,
        requester_sub=requester_sub,
        tenant=tenant,
        raw_score=float(held.raw_score or 0.0),
        normalized_score=float(held.normalized_score),
        created_at=utcnow(),
    )
    session.add(item)
    session.flush()
    held.review_item_id = item.id
    return item


def _item(session: Session, *, item_id: int) -> ReviewItem:
    item = session.get(ReviewItem, item_id)
    if item is None:
        raise ReviewItemNotFound(f"no review item {item_id}")
    return item


def decide_review(session: Session, *, item_id: int, approve: bool, actor: str, note: str) -> ReviewItem:
    """An admin approves or denies a pending item; a decided item cannot be decided again."""
    item = _item(session, item_id=item_id)
    if item.status is not ReviewStatus.PENDING:
        raise ReviewAlreadyDecided(f"review item {item_id} is already {item.status.value}")
    item.status = ReviewStatus.APPROVED if approve else ReviewStatus.DENIED
    item.decided_by, item.decided_at, item.decision_note = actor, utcnow(), note
    if approve:
        bump_version(session)  # clearances live in the index snapshot
    session.flush()
    return item


def review_status_for_requester(
    session: Session, *, item_id: int, requester_iss: str, requester_sub: str
) -> ReviewStatus:
    """The requester sees the status of their own item only (others' items look absent)."""
    item = session.get(ReviewItem, item_id)
    if item is None or (item.requester_iss, item.requester_sub) != (requester_iss, requester_sub):
        raise ReviewItemNotFound(f"no review item {item_id}")
    return item.status


def get_review_item(session: Session, *, item_id: int) -> ReviewItem:
    return _item(session, item_id=item_id)


def pending_reviews(session: Session) -> list[ReviewItem]:
    return list(
        session.scalars(select(ReviewItem).where(ReviewItem.status == ReviewStatus.PENDING).order_by(ReviewItem.id))
    )
