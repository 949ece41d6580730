"""Consent: spoken one-time challenges, enrollment checks, scoped grants, usage ledger, erasure.

The gateway calls, in order of a voice's life:
``create_challenge`` -> ``consume_challenge`` -> ``enroll_consumed_challenge`` (checks a-f) -> ``authorize_use`` / ``recheck`` /
``record_usage`` per synthesis -> ``add_reference_samples`` -> ``revoke_consent`` ->
``erase_voice_data``.
"""

from policy.consent.asr import SpeechRecognizer, default_recognizer
from policy.consent.challenges import (
    CHALLENGE_TTL,
    OwnerIdentity,
    consume_challenge,
    create_challenge,
    statement_of,
)
from policy.consent.enrollment import (
    EnrollmentResult,
    EnrollmentThresholds,
    Recording,
    add_reference_samples,
    enroll_consumed_challenge,
)
from policy.consent.grants import (
    Grant,
    authorize_use,
    consents_of_voice,
    owned_voice,
    owner_consent,
    recheck,
    record_usage,
    revoke_consent,
    usage_of_voice,
    voices_granted_to,
    voices_of_owner,
)
from policy.consent.statement_text import DEFAULT_TEMPLATES, Statement
from policy.consent.storage import erase_voice_data, load_samples, purge_erased_remnants

__all__ = [
    "CHALLENGE_TTL",
    "DEFAULT_TEMPLATES",
    "EnrollmentResult",
    "EnrollmentThresholds",
    "Grant",
    "OwnerIdentity",
    "Recording",
    "SpeechRecognizer",
    "Statement",
    "add_reference_samples",
    "authorize_use",
    "consents_of_voice",
    "consume_challenge",
    "create_challenge",
    "default_recognizer",
    "enroll_consumed_challenge",
    "erase_voice_data",
    "load_samples",
    "owned_voice",
    "owner_consent",
    "purge_erased_remnants",
    "recheck",
    "record_usage",
    "revoke_consent",
    "statement_of",
    "usage_of_voice",
    "voices_granted_to",
    "voices_of_owner",
]
