"""Replay fingerprints: a replayed consent recording matches after re-encoding, gain, noise and
resampling; independent recordings do not."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import resample_poly

from policy.consent.fingerprint import (
    DEFAULT_REPLAY_THRESHOLD,
    Fingerprint,
    check_not_replayed,
    compute_fingerprint,
    match_score,
)
from policy.errors import ConsentRecordingReplayed


@pytest.fixture(scope="module")
def clips(speech_dir):
    return [sf.read(path, dtype="float32") for path in sorted(speech_dir.glob("en_*.wav"))[:8]]


def test_rejects_replayed_consent_recording_after_gain_noise_and_resampling(clips):
    audio, rate = clips[0]
    stored = compute_fingerprint(audio, sample_rate=rate)
    rng = np.random.default_rng(0)
    replay = 0.4 * audio + rng.normal(0, 0.4 * np.sqrt(np.mean(audio**2)) / 10, audio.size)  # 20 dB SNR
    replay = resample_poly(replay, 2, 3).astype(np.float32)  # 24 kHz -> 16 kHz
    with pytest.raises(ConsentRecordingReplayed):
        check_not_replayed(fingerprint=compute_fingerprint(replay, sample_rate=16000), earlier=[("c1", stored)])


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not installed")
def test_rejects_replayed_consent_recording_after_mp3(clips, tmp_path):
    audio, rate = clips[1]
    sf.write(tmp_path / "a.wav", audio, rate)
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-i", tmp_path / "a.wav", "-b:a", "32k", tmp_path / "a.mp3"], check=True
    )
    subprocess.run(["ffmpeg", "-loglevel", "error", "-i", tmp_path / "a.mp3", tmp_path / "b.wav"], check=True)
    decoded, decoded_rate = sf.read(tmp_path / "b.wav", dtype="float32")
    score = match_score(
        compute_fingerprint(decoded, sample_rate=decoded_rate), compute_fingerprint(audio, sample_rate=rate)
    )
    assert score >= DEFAULT_REPLAY_THRESHOLD


def test_rejects_spliced_recording_with_an_earlier_head(clips):
    """An earlier consent recording's first part followed by new speech still matches."""
    head, rate = clips[2]
    tail, _ = clips[3]
    stored = compute_fingerprint(head, sample_rate=rate)
    spliced = np.concatenate([head[: int(0.7 * head.size)], tail[: 2 * rate]])
    with pytest.raises(ConsentRecordingReplayed):
        check_not_replayed(fingerprint=compute_fingerprint(spliced, sample_rate=rate), earlier=[("c1", stored)])


def test_different_recordings_do_not_match(clips):
    prints = [compute_fingerprint(audio, sample_rate=rate) for audio, rate in clips]
    for i, first in enumerate(prints):
        others = [(str(j), p) for j, p in enumerate(prints) if j != i]
        check_not_replayed(fingerprint=first, earlier=others)
        assert max(match_score(first, p) for _, p in others) < DEFAULT_REPLAY_THRESHOLD / 2


def test_fingerprint_round_trips_and_refuses_garbage(clips):
    audio, rate = clips[0]
    original = compute_fingerprint(audio, sample_rate=rate)
    restored = Fingerprint.from_bytes(original.to_bytes())
    assert np.array_equal(original.hashes, restored.hashes) and match_score(original, restored) > 0.9
    with pytest.raises(ValueError):
        Fingerprint.from_bytes(original.to_bytes()[:-4])
