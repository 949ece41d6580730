"""The attack suite: codecs through ffmpeg, filters and noise in numpy/scipy, excerpts and splices."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import butter, resample_poly, sosfiltfilt


def _ffmpeg(x: np.ndarray, sr: int, encode: list[str], suffix: str, *, keep_length: bool = True) -> np.ndarray:
    with tempfile.TemporaryDirectory() as folder:
        src, coded, back = Path(folder, "in.wav"), Path(folder, "coded" + suffix), Path(folder, "back.wav")
        sf.write(src, x, sr, subtype="FLOAT")
        run = ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-threads", "1"]
        subprocess.run([*run, "-i", str(src), *encode, str(coded)], check=True)
        subprocess.run([*run, "-i", str(coded), "-ar", str(sr), "-ac", "1", "-c:a", "pcm_f32le", str(back)], check=True)
        y, _ = sf.read(back, dtype="float64")
    return _fit(y, x.size) if keep_length else y


def _fit(y: np.ndarray, n: int) -> np.ndarray:
    """Codecs add priming samples; keep lengths comparable (detection does not need it, metrics do)."""
    return np.pad(y, (0, max(0, n - y.size)))[:n]


def _noise(x: np.ndarray, snr_db: float, *, pink: bool, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.normal(0.0, 1.0, x.size)
    if pink:
        spectrum = np.fft.rfft(noise)
        spectrum[1:] /= np.sqrt(np.arange(1, spectrum.size))
        spectrum[0] = 0.0
        noise = np.fft.irfft(spectrum, n=x.size)
    noise *= np.sqrt(np.mean(x**2) / np.mean(noise**2) / 10 ** (snr_db / 10))
    return x + noise


def _filter(x: np.ndarray, sr: int, kind: str, freq) -> np.ndarray:
    return sosfiltfilt(butter(8, freq, btype=kind, fs=sr, output="sos"), x)


def _echo(x: np.ndarray, sr: int, delay_s: float, gain: float) -> np.ndarray:
    d = int(delay_s * sr)
    y = x.copy()
    y[d:] += gain * x[:-d]
    return y


def apply(name: str, x: np.ndarray, sr: int, *, splice_host: np.ndarray, seed: int) -> np.ndarray:
    if name == "none":
        return x
    if name == "mp3_32k":
        return _ffmpeg(x, sr, ["-c:a", "libmp3lame", "-b:a", "32k"], ".mp3")
    if name == "mp3_64k":
        return _ffmpeg(x, sr, ["-c:a", "libmp3lame", "-b:a", "64k"], ".mp3")
    if name == "aac_64k":
        return _ffmpeg(x, sr, ["-c:a", "aac", "-b:a", "64k"], ".m4a")
    if name == "opus_16k":
        return _ffmpeg(x, sr, ["-c:a", "libopus", "-b:a", "16k"], ".ogg")
    if name == "resample_8k":
        return _fit(resample_poly(resample_poly(x, 1, sr // 8000), sr // 8000, 1), x.size)
    if name == "white_noise_20db":
        return _noise(x, 20.0, pink=False, seed=seed)
    if name == "pink_noise_20db":
        return _noise(x, 20.0, pink=True, seed=seed)
    if name == "lowpass_4k":
        return _filter(x, sr, "lowpass", 4000)
    if name == "highpass_500":
        return _filter(x, sr, "highpass", 500)
    if name == "bandpass_300_3400":
        return _filter(x, sr, "bandpass", (300, 3400))
    if name == "echo_0.3s_0.4":
        return _echo(x, sr, 0.3, 0.4)
    if name == "gain_0.3":
        return 0.3 * x
    if name == "gain_3_clipped":
        return np.clip(3.0 * x, -1.0, 1.0)
    if name == "excerpt_3s":
        start = max(0, min(sr, x.size - 3 * sr))
        return x[start : start + 3 * sr]
    if name == "excerpt_1s":
        return x[int(1.5 * sr) : int(1.5 * sr) + sr]
    if name == "splice":
        half = splice_host.size // 2
        return np.concatenate([splice_host[:half], x, splice_host[half:]])
    if name.startswith("speed_"):  # resampling: tempo and pitch change together
        factor = float(name.split("_")[1])
        return _ffmpeg(x, sr, ["-af", f"asetrate={sr * factor:.0f},aresample={sr}"], ".wav", keep_length=False)
    if name.startswith("tempo_"):  # time stretch with pitch kept
        factor = float(name.split("_")[1])
        return _ffmpeg(x, sr, ["-af", f"atempo={factor}"], ".wav", keep_length=False)
    raise ValueError(f"unknown attack {name}")


ATTACKS = [
    "none",
    "mp3_32k",
    "mp3_64k",
    "aac_64k",
    "opus_16k",
    "resample_8k",
    "white_noise_20db",
    "pink_noise_20db",
    "lowpass_4k",
    "highpass_500",
    "bandpass_300_3400",
    "echo_0.3s_0.4",
    "gain_0.3",
    "gain_3_clipped",
    "excerpt_3s",
    "splice",
    "speed_0.95",
    "speed_1.05",
    "tempo_0.9",
    "tempo_1.1",
    "excerpt_1s",
]
SCALE_ATTACKS = {"speed_0.95", "speed_1.05", "tempo_0.9", "tempo_1.1"}
PAYLOAD_ATTACKS = {"none", "mp3_64k", "aac_64k", "excerpt_3s"}
