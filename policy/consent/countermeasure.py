"""An anti-spoofing countermeasure for consent recordings: a local ONNX export of an AASIST-style
model (raw 16 kHz waveform in, two-class logits out), pinned by sha256.

The input and scoring follow AASIST's own evaluation (clovaai/aasist): a float32 waveform in
[-1, 1] at 16 kHz, cut into windows of 64 600 samples (about 4 s; ``data_utils.pad`` tiles a
shorter one to that length); the model returns ``(last_hidden, output)`` and the score of a
window is ``output[:, 1]``, the bona fide logit (``main.py``, ``produce_evaluation_file``;
``genSpoof_list`` labels bona fide 1, spoof 0). Higher means more likely genuine speech; the
threshold is the deployment's, from the model's own calibration (its EER or a chosen operating
point), in the same logit units. A recording is scored window by window over its whole length
and its score is the lowest window's, so a statement with one synthesized part scores as that part.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from policy.errors import ConsentRecordingSynthetic, CountermeasureFailed, SpeakerModelError
from policy.speaker import open_pinned_onnx, resample

SAMPLE_RATE = 16_000
WINDOW_SAMPLES = 64_600
BONA_FIDE_CLASS = 1
# A consent recording is at most a minute (enrollment refuses longer ones): 15 windows.
MAX_WINDOWS = 16


@dataclass(frozen=True)
class CountermeasureSpec:
    path: Path
    sha256: str
    threshold: float


class OnnxCountermeasure:
    """Scores how likely a recording is genuine (not synthesized or converted) speech."""

    def __init__(self, spec: CountermeasureSpec, *, threads: int = 1) -> None:
        if not np.isfinite(spec.threshold):
            raise SpeakerModelError("the countermeasure threshold must be a finite number")
        self._spec = spec
        self._session: Any = open_pinned_onnx(
            Path(spec.path), sha256=spec.sha256, what="countermeasure model", threads=threads
        )
        inputs = self._session.get_inputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 2:
            raise SpeakerModelError("a countermeasure model takes one [batch, samples] waveform input")
        samples = inputs[0].shape[1]
        if isinstance(samples, int) and samples != WINDOW_SAMPLES:
            raise SpeakerModelError(
                f"the model takes {samples} samples per window, AASIST's windows are {WINDOW_SAMPLES}"
            )
        self._input_name = str(inputs[0].name)
        # The logits are the output with two classes (AASIST exports the hidden state first).
        logits = [o for o in self._session.get_outputs() if o.shape and o.shape[-1] == 2]
        if len(logits) != 1:
            raise SpeakerModelError("a countermeasure model must have exactly one [batch, 2] logits output")
        self._output_name = str(logits[0].name)

    @property
    def name(self) -> str:
        return f"{Path(self._spec.path).stem}-{self._spec.sha256.lower()[:12]}"

    @property
    def threshold(self) -> float:
        return self._spec.threshold

    def score(self, audio: np.ndarray, *, sample_rate: int) -> float:
        """The bona fide logit of the recording's most spoof-like window."""
        waveform = np.asarray(audio, dtype=np.float32)
        if waveform.ndim != 1 or waveform.size == 0 or not np.all(np.isfinite(waveform)):
            raise CountermeasureFailed("the countermeasure scores one non-empty, finite mono waveform")
        if sample_rate != SAMPLE_RATE:
            waveform = resample(waveform, from_rate=int(sample_rate), to_rate=SAMPLE_RATE)
        batch = np.stack(windows(waveform)).astype(np.float32)
        try:
            (output,) = self._session.run([self._output_name], {self._input_name: batch})
        except Exception as exc:  # onnxruntime's errors are untyped; a failed run is a model error
            raise CountermeasureFailed(f"countermeasure model {self.name} failed: {exc}") from exc
        logits = np.asarray(output, dtype=np.float64)
        if logits.shape != (len(batch), 2) or not np.all(np.isfinite(logits)):
            raise CountermeasureFailed(f"countermeasure model {self.name} returned logits of shape {logits.shape}")
        return float(logits[:, BONA_FIDE_CLASS].min())

    def check(self, audio: np.ndarray, *, sample_rate: int) -> float:
        """Raise ``ConsentRecordingSynthetic`` below the threshold; returns the score."""
        score = self.score(audio, sample_rate=sample_rate)
        if score < self._spec.threshold:
            raise ConsentRecordingSynthetic(
                f"the anti-spoofing model scores the consent recording as synthetic speech "
                f"({score:.2f} < {self._spec.threshold:.2f})"
            )
        return score


def windows(waveform: np.ndarray) -> list[np.ndarray]:
    """Consecutive windows of ``WINDOW_SAMPLES`` covering the waveform (the last one ends at its
    end); one shorter than a window is repeated to fill it, as AASIST's evaluation pads."""
    if waveform.size < WINDOW_SAMPLES:
        repeats = WINDOW_SAMPLES // waveform.size + 1
        return [np.tile(waveform, repeats)[:WINDOW_SAMPLES]]
    starts = list(range(0, waveform.size - WINDOW_SAMPLES + 1, WINDOW_SAMPLES))
    if starts[-1] + WINDOW_SAMPLES < waveform.size:
        starts.append(waveform.size - WINDOW_SAMPLES)
    if len(starts) > MAX_WINDOWS:
        raise CountermeasureFailed(f"the recording is longer than {MAX_WINDOWS} countermeasure windows")
    return [waveform[start : start + WINDOW_SAMPLES] for start in starts]
