"""Voice enrollment: run checks a-f on a consent recording and references, then store the voice.

a. the recording says the challenge's statement and its random phrase (statement_check);
b. the consent speaker is the reference speaker (the protected-speaker list's calibrated scorer:
   cohort-normalised scores against the calibration's consent threshold, ``CalibratedScorer``);
c. the consent recording carries no synthetic-speech watermark (``detect_watermark``, passed in
   by the gateway because policy does not import watermark) and, where the deployment has one,
   passes the anti-spoofing countermeasure (policy.consent.countermeasure);
d. it is not a replay of an earlier consent recording (fingerprint);
e. the references pass the quality gates (audio_quality);
f. the references are not a protected speaker (``check_protected``, filled by the blocklist).

They run in the order a, e, b, c, d, f (quality before the speaker decision, so that decision
only sees usable references). Each failure raises its own ``policy.errors`` class. Nothing is
stored unless all pass. The
gateway decodes uploads, writes the audit event and commits (see consume_challenge for why the
challenge's use should be committed even when a check fails).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from policy.audio_quality import QualityLimits, check_reference_quality, validate_waveform
from policy.blocklist.scorer import CalibratedScorer, PairScore
from policy.consent.asr import SpeechRecognizer
from policy.consent.challenges import statement_of
from policy.consent.fingerprint import (
    DEFAULT_REPLAY_THRESHOLD,
    Fingerprint,
    check_not_replayed,
    compute_fingerprint,
)
from policy.consent.grants import owned_voice
from policy.consent.models import Consent, ConsentChallenge, ConsentFingerprint, Voice
from policy.consent.statement_check import DEFAULT_MIN_STATEMENT_SCORE, StatementScore, verify_statement
from policy.consent.storage import create_voice_key, load_samples, replace_profile, store_sample
from policy.errors import (
    AudioTooLong,
    ChallengeAlreadyUsed,
    ChallengeNotFound,
    ConsentRecordingSynthetic,
    ConsentSpeakerMismatch,
    SampleRateTooLow,
    VoiceErased,
)
from policy.speaker import SpeakerEmbedder

# The statement takes about ten seconds to read; a longer consent recording only costs recognizer
# time (and would give a splice more room), so it is refused before recognition.
MAX_CONSENT_RECORDING_S = 60.0


@dataclass(frozen=True)
class Recording:
    audio: np.ndarray
    sample_rate: int


@dataclass(frozen=True)
class EnrollmentThresholds:
    min_statement_score: float = DEFAULT_MIN_STATEMENT_SCORE
    replay_match: float = DEFAULT_REPLAY_THRESHOLD
    quality: QualityLimits = field(default_factory=QualityLimits)


@dataclass(frozen=True)
class EnrollmentResult:
    voice_id: str
    consent_id: str
    statement: StatementScore
    speaker: PairScore  # the worst-matching reference against the consent recording
    consent_recording_sha256: str


# (audio, sample_rate) -> name of the detected watermark scheme, or None when none is found.
WatermarkDetector = Callable[[np.ndarray, int], str | None]


class SpoofCheck(Protocol):
    """Raises ``ConsentRecordingSynthetic`` for a recording scored as synthetic speech."""

    def check(self, audio: np.ndarray, *, sample_rate: int) -> float: ...


# references -> None, or raises (policy.errors.SpeakerProtected, ...) for a protected speaker.
ProtectedSpeakerCheck = Callable[[list[Recording]], None]


def _sha256(audio: np.ndarray) -> str:
    return hashlib.sha256(np.asarray(audio, dtype="<f4").tobytes()).hexdigest()


def check_same_speaker(
    *, consent: Recording, references: list[Recording], embedder: SpeakerEmbedder, scorer: CalibratedScorer
) -> tuple[PairScore, np.ndarray]:
    """Every reference must match the consent speaker on the calibrated scale (the consent
    recording is the claimed identity); returns the worst pair's score and the profile.

    Each reference is scored on its own rather than fused: one stranger's reference among the
    owner's must not be averaged into a pass.
    """
    consent_vector = embedder.embed(consent.audio, sample_rate=consent.sample_rate)
    reference_vectors = [embedder.embed(r.audio, sample_rate=r.sample_rate) for r in references]
    worst = min((scorer.pair(consent_vector, vector) for vector in reference_vectors), key=lambda s: s.normalized)
    threshold = scorer.calibration.consent_match
    if worst.normalized < threshold:
        raise ConsentSpeakerMismatch(
            f"a reference recording is not the consent speaker (calibrated score {worst.normalized:.2f} < "
            f"{threshold:.2f}, P(same speaker) {worst.probability:.2f})"
        )
    profile = np.mean(reference_vectors, axis=0)
    return worst, (profile / np.linalg.norm(profile)).astype(np.float32)


def check_not_synthetic(
    *, consent: Recording, detect_watermark: WatermarkDetector, countermeasure: SpoofCheck | None = None
) -> None:
    """No watermark of the gateway's stack, then (when configured) the countermeasure's score:
    the watermark catches this gateway's own clones, the countermeasure other systems' speech."""
    scheme = detect_watermark(consent.audio, consent.sample_rate)
    if scheme is not None:
        raise ConsentRecordingSynthetic(f"the consent recording carries a {scheme} watermark: it is synthetic speech")
    if countermeasure is not None:
        countermeasure.check(consent.audio, sample_rate=consent.sample_rate)


def _earlier_fingerprints(session: Session) -> list[tuple[str, Fingerprint]]:
    rows = session.execute(select(ConsentFingerprint.consent_id, ConsentFingerprint.fingerprint)).all()
    return [(consent_id, Fingerprint.from_bytes(blob)) for consent_id, blob in rows]


def enroll_consumed_challenge(
    session: Session,
    *,
    challenge: ConsentChallenge,
    consent_recording: Recording,
    references: list[Recording],
    embedder: SpeakerEmbedder,
    speaker_scorer: CalibratedScorer,
    recognizer: SpeechRecognizer,
    detect_watermark: WatermarkDetector,
    check_protected: ProtectedSpeakerCheck,
    key_encryption_key: bytes,
    now: datetime,
    thresholds: EnrollmentThresholds = EnrollmentThresholds(),
    templates: dict[str, str] | None = None,
    countermeasure: SpoofCheck | None = None,
) -> EnrollmentResult:
    """Create a voice and its consent from a challenge ``consume_challenge`` already marked used,
    or raise the first failed check.

    The gateway consumes (and commits) in a transaction of its own first, so a failed check
    cannot give the challenge back; this only insists that it was consumed and has no consent.
    """
    if challenge.used_at is None:
        raise ChallengeNotFound(f"challenge {challenge.id} was not consumed before enrollment")
    if session.scalar(select(Consent.id).where(Consent.challenge_id == challenge.id)) is not None:
        raise ChallengeAlreadyUsed("this challenge already created a consent")
    owner_iss, owner_sub = challenge.owner_iss, challenge.owner_sub
    consent_audio = validate_waveform(consent_recording.audio, sample_rate=consent_recording.sample_rate)
    if consent_audio.size > MAX_CONSENT_RECORDING_S * consent_recording.sample_rate:
        raise AudioTooLong(f"the consent recording may last at most {MAX_CONSENT_RECORDING_S:.0f} s")
    if consent_recording.sample_rate < thresholds.quality.min_sample_rate:
        raise SampleRateTooLow(
            f"the consent recording must be sampled at {thresholds.quality.min_sample_rate} Hz or more"
        )
    consent = Recording(audio=consent_audio, sample_rate=consent_recording.sample_rate)
    references = [
        Recording(audio=validate_waveform(r.audio, sample_rate=r.sample_rate), sample_rate=r.sample_rate)
        for r in references
    ]
    statement = statement_of(challenge, templates=templates)
    # a. the statement and its phrase
    statement_score = verify_statement(
        audio=consent.audio,
        sample_rate=consent.sample_rate,
        statement=statement,
        recognizer=recognizer,
        min_score=thresholds.min_statement_score,
    )
    # e runs before b so that the speaker decision only sees references of usable quality.
    check_reference_quality([(r.audio, r.sample_rate) for r in references], limits=thresholds.quality)
    # b. the consent speaker is the reference speaker
    speaker, profile = check_same_speaker(
        consent=consent, references=references, embedder=embedder, scorer=speaker_scorer
    )
    # c. not synthetic speech: this gateway's or a PerTh-marking engine's mark, or the countermeasure
    check_not_synthetic(consent=consent, detect_watermark=detect_watermark, countermeasure=countermeasure)
    # d. not a replay of an earlier consent recording
    fingerprint = compute_fingerprint(consent.audio, sample_rate=consent.sample_rate)
    check_not_replayed(
        fingerprint=fingerprint, earlier=_earlier_fingerprints(session), threshold=thresholds.replay_match
    )
    # f. not a protected speaker
    check_protected(references)

    voice = Voice(
        id=secrets.token_hex(16),
        owner_iss=owner_iss,
        owner_sub=owner_sub,
        owner_name=challenge.owner_name,
        status="active",
        embedder_name=embedder.name,
        profile_version=1,
        created_at=now,
    )
    session.add(voice)
    session.flush()
    create_voice_key(session, voice_id=voice.id, key_encryption_key=key_encryption_key)
    recording_sha256 = _sha256(consent.audio)
    consent_row = Consent(
        id=secrets.token_hex(16),
        voice_id=voice.id,
        challenge_id=challenge.id,
        owner_iss=owner_iss,
        owner_sub=owner_sub,
        grantee_kind=challenge.grantee_kind,
        grantee_id=challenge.grantee_id,
        purposes=list(challenge.purposes),
        languages=list(challenge.languages),
        not_before=challenge.not_before,
        not_after=challenge.not_after,
        max_uses=challenge.max_uses,
        uses=0,
        statement_sha256=hashlib.sha256(statement.text.encode()).hexdigest(),
        recording_sha256=recording_sha256,
        created_at=now,
    )
    session.add(consent_row)
    session.add(ConsentFingerprint(consent_id=consent_row.id, fingerprint=fingerprint.to_bytes(), created_at=now))
    session.flush()
    kek = key_encryption_key
    store_sample(
        session,
        voice_id=voice.id,
        kind="consent",
        data=consent.audio,
        sample_rate=consent.sample_rate,
        key_encryption_key=kek,
    )
    for reference in references:
        store_sample(
            session,
            voice_id=voice.id,
            kind="reference",
            data=reference.audio,
            sample_rate=reference.sample_rate,
            key_encryption_key=kek,
        )
    replace_profile(session, voice_id=voice.id, profile=profile, key_encryption_key=kek)
    return EnrollmentResult(
        voice_id=voice.id,
        consent_id=consent_row.id,
        statement=statement_score,
        speaker=speaker,
        consent_recording_sha256=recording_sha256,
    )


def add_reference_samples(
    session: Session,
    *,
    voice_id: str,
    owner_iss: str,
    owner_sub: str,
    references: list[Recording],
    embedder: SpeakerEmbedder,
    speaker_scorer: CalibratedScorer,
    check_protected: ProtectedSpeakerCheck,
    key_encryption_key: bytes,
    thresholds: EnrollmentThresholds = EnrollmentThresholds(),
) -> np.ndarray:
    """Add references to an enrolled voice (same quality, speaker and protection checks against
    the stored consent recording) and recompute the profile; returns the new profile."""
    voice = owned_voice(session, voice_id=voice_id, owner_iss=owner_iss, owner_sub=owner_sub)
    if voice.status != "active":
        raise VoiceErased(f"voice {voice_id} was erased")
    new = [
        Recording(audio=validate_waveform(r.audio, sample_rate=r.sample_rate), sample_rate=r.sample_rate)
        for r in references
    ]
    stored = [
        Recording(audio=a, sample_rate=rate)
        for a, rate in load_samples(session, voice_id=voice_id, kind="reference", key_encryption_key=key_encryption_key)
    ]
    check_reference_quality([(r.audio, r.sample_rate) for r in stored + new], limits=thresholds.quality)
    consent_audio, consent_rate = load_samples(
        session, voice_id=voice_id, kind="consent", key_encryption_key=key_encryption_key
    )[0]
    _, profile = check_same_speaker(
        consent=Recording(audio=consent_audio, sample_rate=consent_rate),
        references=stored + new,
        embedder=embedder,
        scorer=speaker_scorer,
    )
    check_protected(new)
    for reference in new:
        store_sample(
            session,
            voice_id=voice_id,
            kind="reference",
            data=reference.audio,
            sample_rate=reference.sample_rate,
            key_encryption_key=key_encryption_key,
        )
    replace_profile(session, voice_id=voice_id, profile=profile, key_encryption_key=key_encryption_key)
    voice.profile_version += 1
    session.flush()
    return profile
