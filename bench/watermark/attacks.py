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


def _sox(x: np.ndarray, sr: int, effect: list[str]) -> np.ndarray:
    with tempfile.TemporaryDirectory() as folder:
        src, back = Path(folder, "in.wav"), Path(folder, "out.wav")
        sf.write(src, x, sr, subtype="FLOAT")
        subprocess.run(["sox", "-V1", str(src), str(back), *effect], check=True)
        y, _ = sf.read(back, dtype="float64")
    return np.asarray(y)


def _telephone(x: np.ndarray, sr: int, encode: list[str], suffix: str) -> np.ndarray:
    """300-3400 Hz, 8 kHz, through a telephone codec and back."""
    return _ffmpeg(_filter(x, sr, "bandpass", (300, 3400)), sr, ["-ar", "8000", "-ac", "1", *encode], suffix)


def _world(x: np.ndarray, sr: int) -> np.ndarray:
    """Vocoder analysis and resynthesis: pyworld's harvest, cheaptrick and d4c, then synthesis."""
    import pyworld

    f0, t = pyworld.harvest(x, sr)
    sp = pyworld.cheaptrick(x, f0, t, sr)
    ap = pyworld.d4c(x, f0, t, sr)
    return _fit(pyworld.synthesize(f0, sp, ap, sr), x.size)


def excerpt(x: np.ndarray, sr: int, seconds: float) -> np.ndarray:
    """``seconds`` from 1 s in (or from the start of a clip too short for that)."""
    n = int(seconds * sr)
    start = max(0, min(sr, x.size - n))
    return x[start : start + n]


def apply(name: str, x: np.ndarray, sr: int, *, splice_host: np.ndarray, seed: int) -> np.ndarray:
    kind, _, arg = name.partition("_")
    if name == "none":
        return x
    if kind == "mp3" and arg.endswith("k"):
        return _ffmpeg(x, sr, ["-c:a", "libmp3lame", "-b:a", arg], ".mp3")
    if kind == "opus":
        return _ffmpeg(x, sr, ["-c:a", "libopus", "-b:a", arg], ".ogg")
    if name == "aac_64k":
        return _ffmpeg(x, sr, ["-c:a", "aac", "-b:a", "64k"], ".m4a")
    if kind == "codec2":  # libcodec2 in ffmpeg: 8 kHz, the modes of the codec2 package's c2enc
        return _ffmpeg(x, sr, ["-ar", "8000", "-ac", "1", "-c:a", "libcodec2", "-mode", arg], ".c2")
    if name == "g711_mulaw":
        return _telephone(x, sr, ["-c:a", "pcm_mulaw"], ".wav")
    if name == "g711_alaw":
        return _telephone(x, sr, ["-c:a", "pcm_alaw"], ".wav")
    if name == "gsm_fr":
        return _telephone(x, sr, ["-c:a", "libgsm"], ".gsm")
    if name == "world_resynthesis":
        return _world(x, sr)
    if name == "resample_8k":
        return _fit(resample_poly(resample_poly(x, 1, sr // 8000), sr // 8000, 1), x.size)
    if kind == "whitenoise":
        return _noise(x, float(arg.removesuffix("db")), pink=False, seed=seed)
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
        return excerpt(x, sr, 3.0)
    if name == "mp3_32k_excerpt_3s":  # the released file re-encoded, then cut
        return excerpt(apply("mp3_32k", x, sr, splice_host=splice_host, seed=seed), sr, 3.0)
    if name == "excerpt_1s":
        return x[int(1.5 * sr) : int(1.5 * sr) + sr]
    if name == "splice":
        half = splice_host.size // 2
        return np.concatenate([splice_host[:half], x, splice_host[half:]])
    if kind == "pitch":  # sox: cents, duration kept
        return _sox(x, sr, ["pitch", arg])
    if kind == "tempo":  # sox WSOLA: duration / factor, pitch kept
        return _sox(x, sr, ["tempo", arg])
    if kind == "speed":  # sox: resampled playback, pitch and tempo together
        return _sox(x, sr, ["speed", arg])
    raise ValueError(f"unknown attack {name}")


# The attack classes of the target table and the classic suite.
ATTACKS = [
    "none",
    "mp3_32k",
    "mp3_64k",
    "aac_64k",
    "opus_16k",
    "resample_8k",
    "whitenoise_20db",
    "pink_noise_20db",
    "lowpass_4k",
    "highpass_500",
    "bandpass_300_3400",
    "echo_0.3s_0.4",
    "gain_0.3",
    "gain_3_clipped",
    "excerpt_3s",
    "mp3_32k_excerpt_3s",
    "excerpt_1s",
    "splice",
    # warps
    "pitch_+200",
    "pitch_-200",
    "pitch_+300",
    "pitch_-300",
    "tempo_0.75",
    "tempo_0.8",
    "tempo_1.25",
    "tempo_1.33",
    "speed_0.85",
    "speed_0.9",
    "speed_1.1",
    "speed_1.15",
    # low-rate, telephone and parametric
    "opus_8k",
    "codec2_3200",
    "codec2_1600",
    "g711_mulaw",
    "gsm_fr",
    "world_resynthesis",
]
# Sweeps in the style of AudioMarkBench; points already above are not repeated.
SWEEPS = {
    "speed": ["speed_0.7", "speed_0.8", "speed_0.9", "speed_1.1", "speed_1.2", "speed_1.3", "speed_1.5"],
    "mp3": ["mp3_8k", "mp3_16k", "mp3_32k", "mp3_40k"],
    "opus": ["opus_4k", "opus_8k", "opus_16k", "opus_32k"],
    "white noise": [f"whitenoise_{snr}db" for snr in (40, 30, 20, 10, 5)],
}
ALL_ATTACKS = list(dict.fromkeys([*ATTACKS, *(a for sweep in SWEEPS.values() for a in sweep)]))
WRONG_KEY_ATTACKS = ("none", "mp3_64k", "pitch_+200", "speed_1.1")

# Targets (issue 17): presence TPR at a computed FPR of 1e-4, and payload rate.
PRESENCE_TARGETS = {
    **{a: 0.98 for a in ATTACKS[:16] if a not in ("excerpt_1s",)},
    **dict.fromkeys(("pitch_+200", "pitch_-200", "tempo_0.8", "tempo_1.25", "speed_0.9", "speed_1.1"), 0.9),
    "opus_8k": 0.9,
    "codec2_3200": 0.9,
}
PAYLOAD_TARGETS = {
    "none": 0.95,
    "mp3_64k": 0.95,
    "aac_64k": 0.95,
    **dict.fromkeys(("pitch_+200", "pitch_-200", "tempo_0.8", "tempo_1.25", "speed_0.9", "speed_1.1"), 0.8),
}
# Resolved to the request (decoded or attributed among the released outputs).
RESOLVED_TARGETS = {"excerpt_3s": 0.95, "mp3_32k_excerpt_3s": 0.95}
