"""The policy domain's errors: one base class, every concrete error with a stable ``code``.

``gateway/errors.py`` maps these classes to HTTP statuses in one table; the ``code`` string is
what clients see in ``{"error": code, "detail": text}``, so never rename a code once shipped.
Verification functions raise one of these; none returns a bool that a caller could ignore.
"""

from __future__ import annotations


class PolicyError(Exception):
    """Base class of every error the policy domain raises."""

    code = "policy_error"


# --- audio handed to a speaker embedder ------------------------------------------------------


class AudioUnusable(PolicyError):
    """The audio cannot be used for a speaker decision (base class of the specific problems)."""

    code = "audio_unusable"


class AudioEmpty(AudioUnusable):
    code = "audio_empty"


class AudioNotFinite(AudioUnusable):
    code = "audio_not_finite"


class AudioWrongShape(AudioUnusable):
    """Not a mono 1-D float waveform (for example stereo, or a 3-D array)."""

    code = "audio_wrong_shape"


class AudioSampleRateUnsupported(AudioUnusable):
    code = "audio_sample_rate_unsupported"


class AudioTooShort(AudioUnusable):
    """Less speech than the embedder needs for a reliable decision."""

    code = "audio_too_short"


class AudioTooLong(AudioUnusable):
    code = "audio_too_long"


class AudioSilent(AudioUnusable):
    code = "audio_silent"


class AudioClipped(AudioUnusable):
    """Samples outside [-1, 1]: not a float waveform in the documented range."""

    code = "audio_out_of_range"


# --- speaker models ----------------------------------------------------------------------------


class SpeakerModelError(PolicyError):
    """A speaker-embedding model file is missing, altered or not of the expected shape."""

    code = "speaker_model_error"


class SpeakerModelHashMismatch(SpeakerModelError):
    code = "speaker_model_hash_mismatch"


class CountermeasureFailed(SpeakerModelError):
    """The anti-spoofing model could not score a recording: the recording is refused (503)."""

    code = "countermeasure_failed"


class EmbeddingInvalid(PolicyError):
    """An embedding of the wrong dimension, not finite, or of zero norm."""

    code = "embedding_invalid"


# --- consent: challenges, enrollment checks, grants ----------------------------------------------


class ConsentError(PolicyError):
    """Base class of consent errors."""

    code = "consent_error"


class ConsentRequestInvalid(ConsentError):
    """A challenge or grant request with missing or contradictory fields."""

    code = "consent_request_invalid"


class StatementTemplateInvalid(ConsentError):
    """A configured statement template lacks a placeholder or uses words the recognizer lacks."""

    code = "statement_template_invalid"


class IdentityAssuranceRequired(ConsentError):
    """The owner's token lacks the identity-assurance claim this deployment requires."""

    code = "identity_assurance_required"


class ChallengeNotFound(ConsentError):
    code = "challenge_not_found"


class ChallengeExpired(ConsentError):
    code = "challenge_expired"


class ChallengeAlreadyUsed(ConsentError):
    code = "challenge_already_used"


class ConsentWordsNotRevealed(ConsentError):
    """A recording for a challenge whose confirmation words were never revealed: nobody was
    shown them, so the recording cannot be a live reading of them."""

    code = "consent_words_not_revealed"


class ConsentRecordingLate(ConsentError):
    """The recording arrived after the window that opened when the words were revealed: time
    enough to have them synthesized elsewhere, so it is not taken as a live reading."""

    code = "consent_recording_late"


class ChallengeNotYours(ConsentError):
    """The challenge was issued to another identity than the one enrolling."""

    code = "challenge_not_yours"


class SpeechRecognitionFailed(ConsentError):
    code = "speech_recognition_failed"


class StatementNotSpoken(ConsentError):
    """The consent recording does not say the challenge's statement."""

    code = "consent_statement_mismatch"


class ChallengePhraseMismatch(ConsentError):
    """The random phrase of this challenge is not (all) in the consent recording."""

    code = "consent_phrase_mismatch"


class ConsentSpeakerMismatch(ConsentError):
    """The consent speaker is not the speaker of the reference recordings."""

    code = "consent_speaker_mismatch"


class ConsentRecordingSynthetic(ConsentError):
    """The consent recording carries a synthetic-speech watermark."""

    code = "consent_recording_synthetic"


class ConsentRecordingReplayed(ConsentError):
    """The consent recording matches the fingerprint of an earlier consent recording."""

    code = "consent_recording_replayed"


class ReferenceQualityError(ConsentError):
    """Base class of the reference-quality gates (audio_quality)."""

    code = "reference_quality"


class SampleRateTooLow(ReferenceQualityError):
    code = "sample_rate_too_low"


class TooLittleSpeech(ReferenceQualityError):
    code = "too_little_speech"


class TooMuchSpeech(ReferenceQualityError):
    code = "too_much_speech"


class TooMuchClipping(ReferenceQualityError):
    code = "too_much_clipping"


class TooNoisy(ReferenceQualityError):
    code = "snr_too_low"


class VoiceNotFound(ConsentError):
    code = "voice_not_found"


class NotVoiceOwner(ConsentError):
    code = "not_voice_owner"


class VoiceErased(ConsentError):
    code = "voice_erased"


class ConsentNotFound(ConsentError):
    code = "consent_not_found"


class ConsentMissing(ConsentError):
    """No live consent grants this principal the use of this voice."""

    code = "consent_missing"


class ConsentRevoked(ConsentError):
    code = "consent_revoked"


class ConsentNotInWindow(ConsentError):
    """Now is outside the consent's validity window."""

    code = "consent_not_in_window"


class ConsentScopeMismatch(ConsentError):
    """The purpose or language asked for is not one the consent names."""

    code = "consent_scope_mismatch"


class ConsentUsesExhausted(ConsentError):
    code = "consent_uses_exhausted"


class VoiceKeyUnwrapFailed(ConsentError):
    """A voice's stored data key does not open with the configured key-encryption key: the key
    file was changed without re-wrapping the stored keys, or the wrapped key was altered."""

    code = "voice_key_unwrap_failed"


class VoiceKeyDestroyed(ConsentError):
    """The voice's data key is gone (erased): its stored audio cannot be decrypted any more."""

    code = "voice_key_destroyed"


# --- protected-speaker list ----------------------------------------------------------------------


class BlocklistMisconfigured(PolicyError):
    """No cohort, no thresholds, or an embedder that does not match the stored embeddings:
    the list cannot be checked, so nothing is admitted."""

    code = "blocklist_misconfigured"


class SpeakerProtected(PolicyError):
    """The voice matches an entry on the protected-speaker list."""

    code = "speaker_protected"

    def __init__(self, message: str, *, entry_id: int | None = None, normalized_score: float | None = None):
        super().__init__(message)
        # For the audit record and admins; the detail text shown to requesters names no one.
        self.entry_id = entry_id
        self.normalized_score = normalized_score


class SpeakerReviewRequired(PolicyError):
    """The voice is close to a protected entry: held for an administrator, no audio released."""

    code = "speaker_review_required"

    def __init__(
        self,
        message: str,
        *,
        entry_id: int | None = None,
        raw_score: float | None = None,
        normalized_score: float | None = None,
        stage: str | None = None,
        review_item_id: int | None = None,
    ):
        super().__init__(message)
        # What the gateway needs to put the request in the review queue (policy.blocklist.review).
        self.entry_id = entry_id
        self.raw_score = raw_score
        self.normalized_score = normalized_score
        self.stage = stage
        self.review_item_id = review_item_id


class ProtectedSpeakerNotFound(PolicyError):
    code = "protected_speaker_not_found"


class ProtectedSpeakerInactive(PolicyError):
    code = "protected_speaker_inactive"


class BlocklistExceptionRefused(PolicyError):
    """An exception was asked for without the protected person's own verified consent, or for a
    voice that is not that person's."""

    code = "blocklist_exception_refused"


class OptOutRefused(PolicyError):
    """The spoken challenge of an opt-out did not verify."""

    code = "opt_out_refused"


class ReviewItemNotFound(PolicyError):
    code = "review_item_not_found"


class ReviewAlreadyDecided(PolicyError):
    code = "review_already_decided"


class ProtectedSpeakerInvalid(PolicyError):
    """A protected-speaker request with a missing or oversized field."""

    code = "protected_speaker_invalid"
