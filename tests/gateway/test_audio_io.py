"""Uploads in every accepted container decode to checked mono audio; bad uploads get 4xx codes."""

from __future__ import annotations

import hashlib
import io
import subprocess

import numpy as np
import pytest
import soundfile

from gateway.audio_io import AudioRejected, UnsupportedAudioFormat, decode_audio

CLIP = "en_Jon_Kerwood.wav"


@pytest.fixture(scope="module")
def clip_path(speech_dir):
    path = speech_dir / CLIP
    if not path.exists():
        path = sorted(speech_dir.glob("en_*.wav"))[0]
    return path


def _ffmpeg(source, target, *args) -> bytes:
    """Encodes 3 s of `source` into a file, as a client would upload it."""
    command = ["ffmpeg", "-nostdin", "-loglevel", "error", "-i", str(source), "-t", "3", *args, str(target)]
    subprocess.run(command, capture_output=True, check=True)
    return target.read_bytes()


@pytest.mark.parametrize(
    ("container", "ffmpeg_args"),
    [
        ("wav", ["-f", "wav"]),
        ("flac", ["-f", "flac"]),
        ("mp3", ["-c:a", "libmp3lame", "-b:a", "64k", "-f", "mp3"]),
        ("ogg", ["-c:a", "libvorbis", "-f", "ogg"]),
        ("ogg", ["-c:a", "libopus", "-b:a", "32k", "-f", "ogg"]),
        ("webm", ["-c:a", "libopus", "-b:a", "32k", "-f", "webm"]),
        ("mp4", ["-c:a", "aac", "-b:a", "64k", "-f", "mp4"]),
        ("aac", ["-c:a", "aac", "-b:a", "64k", "-f", "adts"]),
    ],
)
def test_decodes_every_accepted_container(clip_path, tmp_path, container, ffmpeg_args):
    decoded = decode_audio(_ffmpeg(clip_path, tmp_path / "upload", *ffmpeg_args))
    assert decoded.container == container
    assert decoded.samples.ndim == 1 and decoded.samples.dtype == np.float32
    assert 2.8 < decoded.duration_seconds < 3.2
    assert np.sqrt(np.mean(decoded.samples**2)) > 0.005  # speech, not silence


def test_stereo_is_mixed_down_to_mono():
    stereo = np.stack([np.full(16000, 0.5, np.float32), np.full(16000, -0.1, np.float32)], axis=1)
    buffer = io.BytesIO()
    soundfile.write(buffer, stereo, 16000, format="WAV", subtype="FLOAT")
    decoded = decode_audio(buffer.getvalue())
    assert decoded.source_channels == 2
    assert np.allclose(decoded.samples, 0.2)


def _wav(samples: np.ndarray, sample_rate: int, subtype: str = "FLOAT") -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, sample_rate, format="WAV", subtype=subtype)
    return buffer.getvalue()


def _rejected(data: bytes, code: str, **limits) -> AudioRejected:
    with pytest.raises(AudioRejected) as error:
        decode_audio(data, **limits)
    assert error.value.code == code
    assert 400 <= error.value.status < 500
    return error.value


def test_rejects_empty_upload():
    _rejected(b"", "audio_empty")


def test_rejects_wav_without_samples():
    _rejected(_wav(np.zeros(0, np.float32), 16000), "audio_empty")


def test_rejects_unknown_format():
    error = _rejected(b"%PDF-1.7 definitely not audio", "audio_unsupported_format")
    assert isinstance(error, UnsupportedAudioFormat) and error.status == 415


def test_rejects_truncated_file():
    whole = _wav(np.random.default_rng(0).uniform(-0.5, 0.5, 16000).astype(np.float32), 16000)
    _rejected(whole[:30], "audio_corrupt")


def test_rejects_corrupt_webm():
    _rejected(b"\x1a\x45\xdf\xa3" + bytes(200), "audio_corrupt")


def test_rejects_nan_samples():
    samples = np.zeros(16000, np.float32)
    samples[100] = np.nan
    _rejected(_wav(samples, 16000), "audio_not_finite")


@pytest.mark.parametrize("sample_rate", [1, 4000, 384000])
def test_rejects_absurd_sample_rate(sample_rate):
    _rejected(_wav(np.zeros(sample_rate, np.float32), sample_rate), "audio_sample_rate_unsupported")


def test_rejects_audio_longer_than_the_limit():
    _rejected(_wav(np.zeros(16000 * 3, np.float32), 16000), "audio_too_long", max_seconds=2.0)


def test_rejects_audio_shorter_than_the_minimum():
    _rejected(_wav(np.zeros(3200, np.float32), 16000), "audio_too_short", min_seconds=1.0)


def test_hash_is_of_the_uploaded_bytes():
    data = _wav(np.zeros(16000, np.float32), 16000)
    assert decode_audio(data).sha256 == hashlib.sha256(data).hexdigest()
