"""The protected-speaker list: entries, calibrated matching, exceptions, review queue.

The gateway calls, per request: ``LiveBlocklist.snapshot()`` then ``screen(...)`` (raises
``SpeakerProtected`` / ``SpeakerReviewRequired``); on a review hold, ``hold_for_review``.
Admin and owner actions are the functions in ``repository`` and ``review``.
"""

from policy.blocklist.index import BlocklistIndex
from policy.blocklist.live import DEFAULT_POLL_SECONDS, LiveBlocklist, load_snapshot
from policy.blocklist.matching import (
    DEFAULT_COHORT_TOP_K,
    BlocklistDecision,
    BlocklistThresholds,
    Cohort,
    Decision,
    speaker_model,
)
from policy.blocklist.models import EntryKind, ReviewStatus, ScreeningStage
from policy.blocklist.repository import (
    AudioSample,
    SpokenChallengeVerifier,
    add_cohort_embedding,
    add_cohort_speaker,
    add_protected_speaker,
    add_samples,
    deactivate_protected_speaker,
    grant_exception,
    inspect_protected_speaker,
    list_protected_speakers,
    opt_out_own_voice,
    revoke_exception,
    transfer_exceptions,
)
from policy.blocklist.review import (
    decide_review,
    get_review_item,
    hold_for_review,
    pending_reviews,
    review_status_for_requester,
)
from policy.blocklist.screening import BlocklistSnapshot, ScreeningResult, reference_check, screen

__all__ = [
    "DEFAULT_COHORT_TOP_K",
    "DEFAULT_POLL_SECONDS",
    "AudioSample",
    "BlocklistDecision",
    "BlocklistIndex",
    "BlocklistSnapshot",
    "BlocklistThresholds",
    "Cohort",
    "Decision",
    "EntryKind",
    "LiveBlocklist",
    "ReviewStatus",
    "ScreeningResult",
    "ScreeningStage",
    "SpokenChallengeVerifier",
    "add_cohort_embedding",
    "add_cohort_speaker",
    "add_protected_speaker",
    "add_samples",
    "deactivate_protected_speaker",
    "decide_review",
    "get_review_item",
    "grant_exception",
    "hold_for_review",
    "inspect_protected_speaker",
    "list_protected_speakers",
    "load_snapshot",
    "opt_out_own_voice",
    "pending_reviews",
    "reference_check",
    "review_status_for_requester",
    "revoke_exception",
    "screen",
    "speaker_model",
    "transfer_exceptions",
]
