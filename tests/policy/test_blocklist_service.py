"""The protected-speaker list end to end on SQLite and PostgreSQL: real speech, the real
resemblyzer encoder, the schema from the migrations."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from sqlalchemy import func, select

from gateway.db import make_session_factory
from policy.blocklist import (
    AudioSample,
    BlocklistThresholds,
    LiveBlocklist,
    ReviewStatus,
    ScreeningStage,
    add_cohort_embedding,
    add_protected_speaker,
    deactivate_protected_speaker,
    decide_review,
    grant_exception,
    hold_for_review,
    inspect_protected_speaker,
    list_protected_speakers,
    opt_out_own_voice,
    review_status_for_requester,
    screen,
)
from policy.blocklist.calibrations import builtin_calibration
from policy.blocklist.matching import Decision
from policy.blocklist.models import ProtectedSpeaker, ProtectedSpeakerSample
from policy.errors import (
    AudioNotFinite,
    AudioSilent,
    AudioTooShort,
    AudioWrongShape,
    BlocklistExceptionRefused,
    BlocklistMisconfigured,
    OptOutRefused,
    PolicyError,
    ProtectedSpeakerInactive,
    ReviewAlreadyDecided,
    ReviewItemNotFound,
    SpeakerProtected,
    SpeakerReviewRequired,
)
from policy.speaker import ResemblyzerEmbedder

torch.set_num_threads(1)
# The calibration the gateway ships for resemblyzer: these tests exercise its real thresholds.
CALIBRATION = builtin_calibration(ResemblyzerEmbedder().name)
assert CALIBRATION is not None
THRESHOLDS = CALIBRATION.thresholds
PROTECTED = "en_andrew"
COHORT = [
    "en_ashley",
    "en_brandon",
    "en_david",
    "en_ethan",
    "en_sarah",
    "en_susan",
    "de_Anka",
    "de_Anton",
    "de_Boris",
    "de_Bernd_Ungerer",
    "de_ColOhr",
    "de_Eki_Teebi",
]
ADMIN = "https://issuer.example|admin-1"


@pytest.fixture(scope="module")
def embedder() -> ResemblyzerEmbedder:
    return ResemblyzerEmbedder()


@pytest.fixture(scope="module")
def clips(speech_dir: Path) -> dict[str, tuple[np.ndarray, int]]:
    names = {PROTECTED, "en_patricia", "de_Sonja", *COHORT}
    return {name: soundfile.read(speech_dir / f"{name}.wav", dtype="float32") for name in names}


@pytest.fixture(scope="module")
def embeddings(embedder, clips) -> dict[str, np.ndarray]:
    return {name: embedder.embed(audio, sample_rate=rate) for name, (audio, rate) in clips.items()}


def _halves(clips, name: str) -> tuple[AudioSample, AudioSample]:
    audio, rate = clips[name]
    half = audio.size // 2
    return AudioSample(audio[:half], rate), AudioSample(audio[half:], rate)


@pytest.fixture
def listed(db_session, embedder, clips, embeddings) -> int:
    """A cohort of 12 speakers and one admin-listed speaker enrolled from the whole clip."""
    for name in COHORT:
        add_cohort_embedding(
            db_session, embedder_name=embedder.name, label=name, embedding=embeddings[name], actor=ADMIN
        )
    first, second = _halves(clips, PROTECTED)
    entry = add_protected_speaker(
        db_session,
        embedder=embedder,
        name="Andrew Example",
        reason="public figure",
        source="press recording",
        samples=[first, second],
        actor=ADMIN,
    )
    db_session.commit()
    return entry.id


@pytest.fixture
def live(db_engine, embedder) -> LiveBlocklist:
    return LiveBlocklist(
        session_factory=make_session_factory(db_engine),
        embedder_name=embedder.name,
        dimension=embedder.dimension,
        thresholds=THRESHOLDS,
        poll_seconds=0.2,
    )


def _screen(live, embedder, sample: AudioSample, *, voice_id: str, stage: ScreeningStage):
    vector = embedder.embed(sample.audio, sample_rate=sample.sample_rate)
    return screen(live.refresh(), embeddings=[vector], embedder_name=embedder.name, voice_id=voice_id, stage=stage)


@pytest.mark.parametrize("stage", [ScreeningStage.REFERENCE, ScreeningStage.OUTPUT])
def test_protected_voice_denied_at_enrollment_and_on_output(listed, live, embedder, clips, stage) -> None:
    _, piece_of_public_recording = _halves(clips, PROTECTED)
    with pytest.raises(SpeakerProtected) as caught:
        _screen(live, embedder, piece_of_public_recording, voice_id="voice-1", stage=stage)
    assert caught.value.entry_id == listed
    other_audio, other_rate = clips["en_patricia"]
    allowed = _screen(live, embedder, AudioSample(other_audio, other_rate), voice_id="voice-2", stage=stage)
    assert allowed.decision.decision.value == "allow"


def test_protected_voice_denied_at_synthesis_after_it_was_listed(db_session, live, embedder, clips, embeddings) -> None:
    """A voice enrolled before its speaker was listed is refused at the next synthesis."""
    for name in COHORT:
        add_cohort_embedding(
            db_session, embedder_name=embedder.name, label=name, embedding=embeddings[name], actor=ADMIN
        )
    db_session.commit()
    first, second = _halves(clips, PROTECTED)
    assert screen(
        live.refresh(),
        embeddings=[embedder.embed(second.audio, sample_rate=second.sample_rate)],
        embedder_name=embedder.name,
        voice_id="voice-1",
        stage=ScreeningStage.REFERENCE,
    )
    add_protected_speaker(
        db_session,
        embedder=embedder,
        name="Andrew Example",
        reason="court order",
        source="order 12/34",
        samples=[first, second],
        actor=ADMIN,
    )
    db_session.commit()
    with pytest.raises(SpeakerProtected):
        _screen(live, embedder, second, voice_id="voice-1", stage=ScreeningStage.SYNTHESIS)


@pytest.mark.parametrize(
    ("make_audio", "error"),
    [
        (lambda audio: np.stack([audio, audio], axis=1), AudioWrongShape),
        (lambda audio: np.where(np.arange(audio.size) == 100, np.nan, audio).astype(np.float32), AudioNotFinite),
        (lambda audio: np.zeros_like(audio), AudioSilent),
        (lambda audio: audio[:4000], AudioTooShort),
    ],
    ids=["stereo", "nan", "silent", "too_short"],
)
def test_bad_sample_audio_rejected_and_nothing_stored(db_session, embedder, clips, make_audio, error) -> None:
    audio, rate = clips[PROTECTED]
    good = AudioSample(audio[: audio.size // 2], rate)
    with pytest.raises(error):
        add_protected_speaker(
            db_session,
            embedder=embedder,
            name="X",
            reason="r",
            source="s",
            samples=[good, AudioSample(make_audio(audio), rate)],
            actor=ADMIN,
        )
    assert db_session.scalar(select(func.count()).select_from(ProtectedSpeaker)) == 0
    assert db_session.scalar(select(func.count()).select_from(ProtectedSpeakerSample)) == 0


class _SpokenChallenge:
    """Stands in for the consent domain's challenge verifier bound to one issued challenge: it
    accepts exactly the recording it was issued for (the gateway wires the real ASR check)."""

    def __init__(self, expected: np.ndarray) -> None:
        self._expected = expected

    def verify(self, *, audio: np.ndarray, sample_rate: int) -> None:
        if audio.shape != self._expected.shape or not np.array_equal(audio, self._expected):
            raise PolicyError("the challenge statement was not heard in the recording")


def test_opt_out_with_unverified_recording_refused(db_session, embedder, clips) -> None:
    first, second = _halves(clips, PROTECTED)
    with pytest.raises(OptOutRefused):
        opt_out_own_voice(
            db_session,
            embedder=embedder,
            verifier=_SpokenChallenge(first.audio),
            owner_iss="https://issuer.example",
            owner_sub="owner-7",
            display_name="Andrew",
            audio=second.audio,
            sample_rate=second.sample_rate,
        )
    assert list_protected_speakers(db_session) == []


def test_opt_out_puts_the_verified_voice_on_the_list(db_session, live, embedder, clips, embeddings) -> None:
    for name in COHORT:
        add_cohort_embedding(
            db_session, embedder_name=embedder.name, label=name, embedding=embeddings[name], actor=ADMIN
        )
    audio, rate = clips[PROTECTED]
    entry = opt_out_own_voice(
        db_session,
        embedder=embedder,
        verifier=_SpokenChallenge(audio),
        owner_iss="https://issuer.example",
        owner_sub="owner-7",
        display_name="Andrew",
        audio=audio,
        sample_rate=rate,
    )
    db_session.commit()
    assert entry.kind.value == "opt_out" and entry.owner_sub == "owner-7"
    excerpt = AudioSample(audio[audio.size // 3 :], rate)
    with pytest.raises((SpeakerProtected, SpeakerReviewRequired)):
        _screen(live, embedder, excerpt, voice_id="someone-elses-voice", stage=ScreeningStage.REFERENCE)


def test_exception_lets_exactly_one_voice_through(db_session, listed, live, embedder, clips) -> None:
    _, second = _halves(clips, PROTECTED)
    consent_recording = embedder.embed(second.audio, sample_rate=second.sample_rate)
    cohort = live.refresh().index.cohort
    grant_exception(
        db_session,
        cohort=cohort,
        deny_threshold=THRESHOLDS.deny,
        entry_id=listed,
        voice_id="voice-approved",
        consent_grant_id="grant-42",
        consent_speaker_embedding=consent_recording,
        embedder_name=embedder.name,
        note="the speaker licensed this voice",
        actor=ADMIN,
    )
    db_session.commit()
    passed = _screen(live, embedder, second, voice_id="voice-approved", stage=ScreeningStage.SYNTHESIS)
    assert passed.decision.decision.value == "allow"
    with pytest.raises(SpeakerProtected):
        _screen(live, embedder, second, voice_id="voice-other", stage=ScreeningStage.SYNTHESIS)
    details = inspect_protected_speaker(db_session, entry_id=listed)
    assert [(e.voice_id, e.consent_grant_id, e.granted_by) for e in details.exceptions] == [
        ("voice-approved", "grant-42", ADMIN)
    ]


def test_exception_refused_when_the_consenting_speaker_is_someone_else(
    db_session, listed, live, embedder, embeddings
) -> None:
    with pytest.raises(BlocklistExceptionRefused):
        grant_exception(
            db_session,
            cohort=live.refresh().index.cohort,
            deny_threshold=THRESHOLDS.deny,
            entry_id=listed,
            voice_id="voice-x",
            consent_grant_id="grant-1",
            consent_speaker_embedding=embeddings["en_patricia"],
            embedder_name=embedder.name,
            note="claims to be Andrew",
            actor=ADMIN,
        )


def test_review_holds_audio_until_an_admin_approves(db_session, listed, db_engine, embedder, clips) -> None:
    # Thresholds with a deny level no score reaches, so every match lands in the review band.
    review_only = LiveBlocklist(
        session_factory=make_session_factory(db_engine),
        embedder_name=embedder.name,
        dimension=embedder.dimension,
        thresholds=BlocklistThresholds(deny=1e6, review=THRESHOLDS.review),
        poll_seconds=0.2,
    )
    _, second = _halves(clips, PROTECTED)
    with pytest.raises(SpeakerReviewRequired) as held:
        _screen(review_only, embedder, second, voice_id="voice-1", stage=ScreeningStage.OUTPUT)
    item = hold_for_review(
        db_session,
        held=held.value,
        voice_id="voice-1",
        request_ref="req-1",
        requester_iss="https://issuer.example",
        requester_sub="user-5",
        tenant="t1",
    )
    db_session.commit()
    assert held.value.review_item_id == item.id
    assert (
        review_status_for_requester(
            db_session, item_id=item.id, requester_iss="https://issuer.example", requester_sub="user-5"
        )
        is ReviewStatus.PENDING
    )
    with pytest.raises(ReviewItemNotFound):
        review_status_for_requester(
            db_session, item_id=item.id, requester_iss="https://issuer.example", requester_sub="user-6"
        )
    # Still held on a retry while pending.
    with pytest.raises(SpeakerReviewRequired):
        _screen(review_only, embedder, second, voice_id="voice-1", stage=ScreeningStage.OUTPUT)
    decide_review(db_session, item_id=item.id, approve=True, actor=ADMIN, note="licensed impersonator")
    db_session.commit()
    assert _screen(review_only, embedder, second, voice_id="voice-1", stage=ScreeningStage.OUTPUT)
    with pytest.raises(SpeakerReviewRequired):
        _screen(review_only, embedder, second, voice_id="voice-2", stage=ScreeningStage.OUTPUT)
    with pytest.raises(ReviewAlreadyDecided):
        decide_review(db_session, item_id=item.id, approve=False, actor=ADMIN, note="second thoughts")


def test_approved_review_never_overrides_a_deny(db_session, listed, live, embedder, clips) -> None:
    _, second = _halves(clips, PROTECTED)
    held = SpeakerReviewRequired("held", entry_id=listed, raw_score=0.8, normalized_score=3.0, stage="reference")
    item = hold_for_review(
        db_session,
        held=held,
        voice_id="voice-1",
        request_ref="req-2",
        requester_iss="i",
        requester_sub="s",
        tenant=None,
    )
    decide_review(db_session, item_id=item.id, approve=True, actor=ADMIN, note="ok")
    db_session.commit()
    with pytest.raises(SpeakerProtected):
        _screen(live, embedder, second, voice_id="voice-1", stage=ScreeningStage.REFERENCE)


def test_deactivation_is_soft_and_recorded(db_session, listed, live, embedder, clips) -> None:
    deactivate_protected_speaker(db_session, entry_id=listed, actor=ADMIN, reason="listed in error")
    db_session.commit()
    _, second = _halves(clips, PROTECTED)
    assert _screen(live, embedder, second, voice_id="voice-1", stage=ScreeningStage.REFERENCE)
    details = inspect_protected_speaker(db_session, entry_id=listed)
    assert not details.entry.active and details.entry.deactivated_by == ADMIN
    assert len(details.samples) == 2
    assert list_protected_speakers(db_session) == []
    assert [e.id for e in list_protected_speakers(db_session, include_inactive=True)] == [listed]
    with pytest.raises(ProtectedSpeakerInactive):
        deactivate_protected_speaker(db_session, entry_id=listed, actor=ADMIN, reason="again")


def test_missing_cohort_fails_closed(db_session, live, embedder, clips) -> None:
    first, _ = _halves(clips, PROTECTED)
    add_protected_speaker(db_session, embedder=embedder, name="A", reason="r", source="s", samples=[first], actor=ADMIN)
    db_session.commit()
    with pytest.raises(BlocklistMisconfigured):
        live.snapshot()


def test_entries_from_another_speaker_model_fail_closed(db_session, listed, db_engine, embedder) -> None:
    other = LiveBlocklist(
        session_factory=make_session_factory(db_engine),
        embedder_name="other-model-123",
        dimension=embedder.dimension,
        thresholds=THRESHOLDS,
    )
    with pytest.raises(BlocklistMisconfigured):
        other.snapshot()


_DEACTIVATE_IN_ANOTHER_PROCESS = """
import sys
from gateway.db import create_db_engine, make_session_factory
from policy.blocklist import deactivate_protected_speaker
engine = create_db_engine(sys.argv[1])
with make_session_factory(engine)() as session:
    deactivate_protected_speaker(session, entry_id=int(sys.argv[2]), actor="admin-in-process-b", reason="court order lifted")
    session.commit()
engine.dispose()
"""


def test_change_made_by_another_process_is_seen_within_5_seconds(listed, db_engine, embedder) -> None:
    live = LiveBlocklist(
        session_factory=make_session_factory(db_engine),
        embedder_name=embedder.name,
        dimension=embedder.dimension,
        thresholds=THRESHOLDS,
    )  # default poll interval
    assert listed in live.snapshot().index.entry_ids
    url = db_engine.url.render_as_string(hide_password=False)
    subprocess.run(
        [sys.executable, "-c", _DEACTIVATE_IN_ANOTHER_PROCESS, url, str(listed)],
        check=True,
        cwd=Path(__file__).resolve().parents[2],
        timeout=60,
    )
    committed = time.monotonic()
    while listed in live.snapshot().index.entry_ids:
        assert time.monotonic() - committed < 5.0, "another process's change not seen within 5 s"
        time.sleep(0.05)


def test_protected_person_enrols_own_voice_through_a_challenge_exception(
    db_session, listed, live, embedder, clips
) -> None:
    """The consent hook honours an exception granted for the consent challenge, and enrolment
    moves it to the new voice; nobody else's enrolment gets through."""
    from policy.blocklist import reference_check, transfer_exceptions

    _, second = _halves(clips, PROTECTED)
    grant_exception(
        db_session,
        cohort=live.refresh().index.cohort,
        deny_threshold=THRESHOLDS.deny,
        entry_id=listed,
        voice_id="challenge:abc",
        consent_grant_id="challenge:abc",
        consent_speaker_embedding=embedder.embed(second.audio, sample_rate=second.sample_rate),
        embedder_name=embedder.name,
        note="Andrew clones his own voice",
        actor=ADMIN,
    )
    db_session.commit()
    reference_check(snapshot=live.refresh, embedder=embedder, voice_id="challenge:abc")([second])
    with pytest.raises(SpeakerProtected):
        reference_check(snapshot=live.refresh, embedder=embedder, voice_id="challenge:other")([second])
    assert transfer_exceptions(db_session, from_voice_id="challenge:abc", to_voice_id="voice-9", actor=ADMIN) == 1
    db_session.commit()
    reference_check(snapshot=live.refresh, embedder=embedder, voice_id="voice-9", stage=ScreeningStage.SYNTHESIS)(
        [second]
    )
    with pytest.raises(SpeakerProtected):
        reference_check(snapshot=live.refresh, embedder=embedder, voice_id="challenge:abc")([second])


def test_background_refresh_picks_up_a_deactivation(db_session, listed, db_engine, embedder) -> None:
    live = LiveBlocklist(
        session_factory=make_session_factory(db_engine),
        embedder_name=embedder.name,
        dimension=embedder.dimension,
        thresholds=THRESHOLDS,
        poll_seconds=0.5,
    )
    assert listed in live.snapshot().index.entry_ids
    live.start_background_refresh()
    try:
        deactivate_protected_speaker(db_session, entry_id=listed, actor=ADMIN, reason="court order lifted")
        db_session.commit()
        deadline = time.monotonic() + 5.0
        # Reads the held snapshot directly: only the background thread can have replaced it.
        while listed in live._snapshot.index.entry_ids:
            assert time.monotonic() < deadline, "background refresh did not reload within 5 s"
            time.sleep(0.05)
    finally:
        live.stop()


def test_moving_to_another_model_reembeds_each_entry_from_its_own_recordings(
    db_session, listed, db_engine, embedder, clips, embeddings
) -> None:
    """The list keeps digests, not audio: the original recordings move an entry to the new model;
    another voice's recording cannot stand in for a sample, and until every entry has moved the
    new model's gateway refuses the list instead of comparing across models."""
    from policy.blocklist.reembedding import reembed_entries
    from policy.speaker import WindowFusionEmbedder

    new_model = WindowFusionEmbedder(embedder)
    for name in COHORT:
        add_cohort_embedding(
            db_session, embedder_name=new_model.name, label=name, embedding=embeddings[name], actor=ADMIN
        )
    first, second = _halves(clips, PROTECTED)
    impostor = AudioSample(*clips["en_patricia"])
    partial = reembed_entries(db_session, embedder=new_model, recordings=[first, impostor], actor=ADMIN)
    db_session.commit()
    assert partial.moved == [] and partial.missing == {listed: 1}
    on_new_model = LiveBlocklist(
        session_factory=make_session_factory(db_engine),
        embedder_name=new_model.name,
        dimension=new_model.dimension,
        thresholds=THRESHOLDS,
    )
    with pytest.raises(BlocklistMisconfigured, match="another speaker model"):
        on_new_model.refresh(force=True)

    report = reembed_entries(db_session, embedder=new_model, recordings=[first, second], actor=ADMIN)
    db_session.commit()
    assert report.moved == [listed] and report.missing == {}
    rows = db_session.query(ProtectedSpeakerSample).filter_by(entry_id=listed).all()
    assert sorted(r.embedder_name for r in rows) == sorted([embedder.name] * 2 + [new_model.name] * 2)
    probe = new_model.embed(first.audio, sample_rate=first.sample_rate)
    decision = on_new_model.refresh(force=True).index.check(probe)
    assert decision.entry_id == listed and decision.decision is not Decision.ALLOW
    # Running it again changes nothing.
    assert reembed_entries(db_session, embedder=new_model, recordings=[first, second], actor=ADMIN).already == 1
