"""The audit domain's errors. Every concrete class carries a stable ``code``.

Verification functions raise one of these, naming what failed (which index, which check);
they never return a bool that a caller could ignore.
"""

from __future__ import annotations


class AuditError(Exception):
    """Base of every audit error."""

    code = "audit_error"


class AuditUnavailable(AuditError):
    """The audit store cannot record an event: whatever depends on it must not proceed."""

    code = "audit_unavailable"


class InvalidAuditEvent(AuditError):
    """An event is malformed, or carries data that must not enter the log."""

    code = "invalid_audit_event"


class NonCanonicalValue(InvalidAuditEvent):
    """A value cannot be encoded canonically (a float, a lone surrogate, a huge integer...)."""

    code = "non_canonical_value"


class InvalidProof(AuditError):
    """A Merkle proof does not verify."""

    code = "invalid_proof"


class InclusionProofInvalid(InvalidProof):
    code = "inclusion_proof_invalid"


class ConsistencyProofInvalid(InvalidProof):
    code = "consistency_proof_invalid"


class ProofUnavailable(AuditError):
    """A proof was asked for an index or size the log does not have."""

    code = "proof_unavailable"


class AuditEventNotFound(ProofUnavailable):
    """No event has this audit identifier (e.g. a watermark payload that names nothing)."""

    code = "audit_event_not_found"


class CheckpointError(AuditError):
    """A checkpoint or signed note is malformed or fails its signature."""

    code = "checkpoint_invalid"


class MalformedCheckpoint(CheckpointError):
    code = "checkpoint_malformed"


class CheckpointSignatureInvalid(CheckpointError):
    """No signature by the trusted key verifies (wrong key, edited text, forged line)."""

    code = "checkpoint_signature_invalid"


class ForkedCheckpoint(CheckpointError):
    """Two signed checkpoints that cannot both describe one append-only log."""

    code = "checkpoint_fork"


class TruncatedLog(CheckpointError):
    """A log or bundle is smaller than a checkpoint already seen for it."""

    code = "log_truncated"


class SigningKeyError(AuditError):
    """A signing or verifier key is malformed or refused (e.g. the dev key outside dev mode)."""

    code = "audit_signing_key_invalid"


class BundleInvalid(AuditError):
    """An export bundle is malformed or does not match its signed checkpoint."""

    code = "audit_bundle_invalid"


class BundleMalformed(BundleInvalid):
    code = "audit_bundle_malformed"


class BundleEventOutOfOrder(BundleInvalid):
    """An event line carries an unexpected leaf index (dropped, inserted or reordered event)."""

    code = "audit_bundle_event_out_of_order"


class BundleRootMismatch(BundleInvalid):
    """The events do not hash to the root the checkpoint signs (an edited or swapped event)."""

    code = "audit_bundle_root_mismatch"


class LogIntegrityError(AuditError):
    """The stored log fails its start-up integrity check."""

    code = "audit_log_integrity"


class RetentionViolation(AuditError):
    """Something tried to delete events inside the minimum retention period."""

    code = "audit_retention_violation"
