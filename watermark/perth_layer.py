"""PerTh (resemble-perth) as a presence-only public layer, for tools that look for it.

The trained weights ship inside the ``resemble-perth`` package. They are loaded here with
``weights_only=True`` after a sha256 check instead of through the package's own loader, which
unpickles whatever file sits in its folder.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from .audio import mono_for_detection, mono_for_embedding, resample
from .detection import Detection, Segment
from .errors import WatermarkModelError

PERTH_CHECKPOINT = "perth_net_250000.pth.tar"
PERTH_SHA256 = "a15bce457ebc53ce5e6c9c3f11df78cf7ee2bf9cdab0a798902135b4c4027670"  # resemble-perth 1.0.1
WINDOW_S = 1.0
SEGMENT_S = 0.5
# Unmarked audio PerTh's detector called marked (score >= 0.5) in the watermark benchmark, per
# kind of audio (docs/benchmarks/watermark.json, "negatives"). It has no computed bound, so
# these rates are all a reader has to weigh a PerTh detection by.
EMPIRICAL_FALSE_POSITIVE_RATE: dict[str, float] | None = None

Audio = npt.NDArray[np.floating]
Floats = npt.NDArray[np.float64]


def _load_perth_net() -> Any:
    try:
        import torch
        import yaml
        from perth.perth_net.perth_net_implicit.config import PerthConfig
        from perth.perth_net.perth_net_implicit.model.perth_net import PerthNet
    except ImportError as exc:  # the package is a declared dependency; say so plainly if it is missing
        raise WatermarkModelError(f"resemble-perth is not installed: {exc}") from exc
    import perth.perth_net.perth_net_implicit as implicit

    folder = Path(implicit.__file__).resolve().parent.parent / "pretrained" / "implicit"
    checkpoint = folder / PERTH_CHECKPOINT
    try:
        data = checkpoint.read_bytes()
        hparams = yaml.safe_load((folder / "hparams.yaml").read_text())
    except OSError as exc:
        raise WatermarkModelError(f"PerTh weights are missing from the resemble-perth package: {exc}") from exc
    digest = hashlib.sha256(data).hexdigest()
    if digest != PERTH_SHA256:
        raise WatermarkModelError(f"PerTh checkpoint sha256 {digest} does not match the pinned {PERTH_SHA256}")
    state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    net = PerthNet(PerthConfig(**hparams))
    net.load_state_dict(state["model"])
    return net.eval()


class PerthScheme:
    """Presence-only neural mark; ``score`` is the decoder's confidence in [0, 1].

    It has no analytic null distribution, so ``false_positive_probability`` is None; the
    benchmark reports its empirical false-positive rate.
    """

    name = "perth"

    def __init__(self, *, threshold: float = 0.5) -> None:
        import torch

        self._torch = torch
        self._net = _load_perth_net()
        from perth.perth_net.perth_net_implicit.utils import denormalize_spectrogram  # importable once loaded

        self._denormalize = denormalize_spectrogram
        self._rate = int(self._net.hp.sample_rate)
        self.threshold = threshold

    def embed(self, audio: Audio, *, sample_rate: int, payload: bytes | None = None) -> Floats:
        samples, rate = mono_for_embedding(audio, sample_rate=sample_rate)
        host = resample(samples, from_rate=rate, to_rate=self._rate)
        with self._torch.no_grad():
            signal = self._torch.from_numpy(host.astype(np.float32))
            magspec, phase = self._net.ap.signal_to_magphase(signal)
            marked_mag, _ = self._net.encoder(magspec[None])
            marked = self._magphase_to_signal(marked_mag[0], phase).numpy().astype(np.float64)
        marked = np.pad(marked, (0, max(0, host.size - marked.size)))[: host.size]
        # add only the change, so the band above PerTh's rate stays as it was
        delta = resample(marked - host, from_rate=self._rate, to_rate=rate)
        delta = np.pad(delta, (0, max(0, samples.size - delta.size)))[: samples.size]
        out = samples + delta
        if np.max(np.abs(samples)) <= 1.0:
            out = np.clip(out, -1.0, 1.0)
        return np.asarray(out, dtype=np.float64)

    def _magphase_to_signal(self, magspec: Any, phase: Any) -> Any:
        """PerTh's own ``magphase_to_signal``, with the complex spectrum built by ``torch.polar``
        instead of ``exp(1j * phase)``: the same numbers, and a quarter of the embedding time saved."""
        level_db = self._denormalize(self._net.hp, magspec)
        magnitude = 10.0 ** (level_db / 20).clip(max=10)
        return self._net.ap.inv_spectrogram(self._torch.polar(magnitude, phase))

    def _scores(self, windows: list[npt.NDArray[np.float32]]) -> Floats:
        with self._torch.no_grad():
            mags = [self._net.ap.signal_to_magphase(self._torch.from_numpy(w.astype(np.float32)))[0] for w in windows]
            length = min(m.shape[-1] for m in mags)
            batch = self._torch.stack([m[..., :length] for m in mags])
            return np.asarray(self._net.decoder(batch).clamp(0.0, 1.0).numpy(), dtype=np.float64)

    def detect(self, audio: Audio, *, sample_rate: int, segments: bool = True) -> Detection:
        samples, rate = mono_for_detection(audio, sample_rate=sample_rate)
        signal = resample(samples, from_rate=rate, to_rate=self._rate).astype(np.float32)
        score = float(self._scores([signal])[0])
        detected = score >= self.threshold
        if not segments:  # the windowed pass costs twice the whole-input one
            return Detection(
                scheme=self.name,
                detected=detected,
                score=score,
                false_positive_probability=None,
                empirical_false_positive_rate=EMPIRICAL_FALSE_POSITIVE_RATE,
            )
        duration = samples.size / rate
        win, hop = int(WINDOW_S * self._rate), int(SEGMENT_S * self._rate)
        starts = list(range(0, max(1, signal.size - win + 1), hop))
        window_scores = self._scores([signal[s : s + win] for s in starts]) if signal.size >= win else np.array([score])
        found_segments = []
        for slot in range(int(np.ceil(duration / SEGMENT_S - 1e-9))):
            t0 = slot * SEGMENT_S
            covering = [
                sc
                for s, sc in zip(starts, window_scores, strict=True)
                if s / self._rate <= t0 < s / self._rate + WINDOW_S
            ]
            found_segments.append(
                Segment(t0, min(t0 + SEGMENT_S, duration), float(max(covering) if covering else window_scores[-1]))
            )
        return Detection(
            scheme=self.name,
            detected=detected,
            score=score,
            false_positive_probability=None,
            segments=tuple(found_segments),
            empirical_false_positive_rate=EMPIRICAL_FALSE_POSITIVE_RATE,
        )
