"""A production speaker model: a local ONNX export, pinned by sha256, with the front end its
training recipe used (WeSpeaker / 3D-Speaker exports by default)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from policy.errors import SpeakerModelError
from policy.speaker import (
    DEFAULT_MAX_INPUT_SECONDS,
    DEFAULT_MIN_SPEECH_SECONDS,
    MODEL_SAMPLE_RATE,
    normalized_embedding,
    open_pinned_onnx,
    speech_for_model,
)

FrontEnd = Literal["waveform", "fbank80"]


@dataclass(frozen=True)
class OnnxModelSpec:
    """Where a production speaker model lives and what it expects.

    ``front_end``: ``"fbank80"`` feeds ``[1, frames, 80]`` Kaldi log-mel filterbanks, computed as
    WeSpeaker's ``compute_fbank`` does (int16-scaled samples, 25 ms / 10 ms Hamming frames, no
    dither, no energy, mean-normalised over time, no variance normalisation): the input of
    WeSpeaker's ResNet / CAM++ / ECAPA exports and of 3D-Speaker's. ``"waveform"`` feeds
    ``[1, samples]`` float32 at 16 kHz. The input and output names are read from the model
    (WeSpeaker names them ``feats``/``embs``, 3D-Speaker ``feature``/``embedding``), and so is the
    embedding size; ``dimension``, when given, must agree with it.
    """

    path: Path
    sha256: str
    name: str
    dimension: int | None = None
    front_end: FrontEnd = "fbank80"


class OnnxSpeakerEmbedder:
    """A local ONNX speaker-embedding model, refused unless its sha256 matches the pin."""

    def __init__(
        self,
        spec: OnnxModelSpec,
        *,
        threads: int = 1,
        min_speech_seconds: float = DEFAULT_MIN_SPEECH_SECONDS,
        max_seconds: float = DEFAULT_MAX_INPUT_SECONDS,
    ) -> None:
        if spec.front_end not in ("waveform", "fbank80"):
            raise SpeakerModelError(f"unknown front end {spec.front_end!r}")
        if spec.dimension is not None and spec.dimension <= 0:
            raise SpeakerModelError(f"embedding dimension must be positive, got {spec.dimension}")
        self._spec = spec
        self.min_speech_seconds = min_speech_seconds
        self.max_seconds = max_seconds
        self._session: Any = open_pinned_onnx(
            Path(spec.path), sha256=spec.sha256, what="ONNX speaker model", threads=threads
        )
        inputs = self._session.get_inputs()
        outputs = self._session.get_outputs()
        if len(inputs) != 1 or not outputs:
            raise SpeakerModelError("ONNX speaker model must have exactly one input and an output")
        self._input_name = str(inputs[0].name)
        self._output_name = str(outputs[0].name)
        shape = list(inputs[0].shape)
        expected_rank = 3 if spec.front_end == "fbank80" else 2
        if len(shape) != expected_rank:
            raise SpeakerModelError(
                f"front end {spec.front_end} needs a rank-{expected_rank} input, model has {inputs[0].shape}"
            )
        if spec.front_end == "fbank80" and isinstance(shape[2], int) and shape[2] != FBANK_BINS:
            raise SpeakerModelError(f"model expects {shape[2]} feature bins, the fbank front end makes {FBANK_BINS}")
        self._dimension = self._read_dimension(outputs[0].shape)

    def _read_dimension(self, declared_shape: Sequence[object]) -> int:
        """The embedding size the model declares, or (dynamic shape) the size it produces on one
        second of a test tone."""
        declared = declared_shape[-1] if declared_shape else None
        if isinstance(declared, int) and declared > 0:
            dimension = declared
        else:
            tone = (0.1 * np.sin(2 * np.pi * 220 * np.arange(MODEL_SAMPLE_RATE) / MODEL_SAMPLE_RATE)).astype(np.float32)
            dimension = int(np.asarray(self._run(tone)).size)
        if dimension <= 0:
            raise SpeakerModelError("ONNX speaker model produces an empty embedding")
        if self._spec.dimension is not None and self._spec.dimension != dimension:
            raise SpeakerModelError(f"model outputs {dimension}-d embeddings, settings say {self._spec.dimension}")
        return dimension

    @property
    def name(self) -> str:
        return f"{self._spec.name}-{self._spec.sha256.lower()[:12]}"

    @property
    def dimension(self) -> int:
        return self._dimension

    def _run(self, speech: np.ndarray) -> np.ndarray:
        model_input = fbank80(speech)[np.newaxis] if self._spec.front_end == "fbank80" else speech[np.newaxis]
        try:
            (output, *_) = self._session.run([self._output_name], {self._input_name: model_input})
        except Exception as exc:  # onnxruntime's errors are untyped; a failed run is a model error
            raise SpeakerModelError(f"ONNX speaker model {self.name} failed: {exc}") from exc
        return np.asarray(output)

    def embed(self, audio: np.ndarray, *, sample_rate: int) -> np.ndarray:
        # No loudness raise: the fbank's mean normalisation removes any gain, and raising first
        # could only clip peaks the model was never trained on.
        speech = speech_for_model(
            audio,
            sample_rate=sample_rate,
            min_speech_seconds=self.min_speech_seconds,
            max_seconds=self.max_seconds,
            raise_volume=False,
        )
        return normalized_embedding(self._run(speech), dimension=self.dimension, source=self.name)


FBANK_BINS = 80


def fbank80(speech: np.ndarray) -> np.ndarray:
    """WeSpeaker's inference ``compute_fbank`` (wespeaker/bin/infer_onnx.py; training adds dither 1.0,
    inference uses none) on 16 kHz float samples."""
    import torch
    import torchaudio.compliance.kaldi as kaldi

    # Kaldi features are computed on int16-scaled samples, as the training recipes do.
    waveform = torch.from_numpy(np.ascontiguousarray(speech, dtype=np.float32) * 32768.0).unsqueeze(0)
    feats = kaldi.fbank(
        waveform,
        num_mel_bins=FBANK_BINS,
        frame_length=25,
        frame_shift=10,
        dither=0.0,
        sample_frequency=MODEL_SAMPLE_RATE,
        window_type="hamming",
        use_energy=False,
    )
    feats = feats - feats.mean(dim=0, keepdim=True)  # CMN without CVN
    return np.asarray(feats.numpy(), dtype=np.float32)
