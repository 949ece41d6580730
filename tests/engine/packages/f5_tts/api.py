"""Reproduces ``src/f5_tts/api.py``'s ``F5TTS`` with the model stubbed: it speaks a buzz."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from f5_tts.infer.utils_infer import preprocess_ref_audio_text

# What the stand-in model was conditioned on, for the tests: (reference seconds, transcript).
CONDITIONED_ON: list[tuple[float, str]] = []


class F5TTS:
    def __init__(
        self,
        model: str = "F5TTS_v1_Base",
        ckpt_file: str = "",
        vocab_file: str = "",
        vocoder_local_path: str | None = None,
        device: str | None = None,
        **_: Any,
    ) -> None:
        # api.py 61-63 -> utils_infer.py 106-113: vocos from <local_path>/config.yaml and
        # <local_path>/pytorch_model.bin; api.py 82-84: the checkpoint and vocabulary files.
        for path in (
            f"{vocoder_local_path}/config.yaml",
            f"{vocoder_local_path}/pytorch_model.bin",
            ckpt_file,
            vocab_file,
        ):
            if not Path(path).is_file():
                raise FileNotFoundError(path)
        self.target_sample_rate = 24000

    def infer(
        self,
        ref_file: str,
        ref_text: str,
        gen_text: str,
        show_info: Callable[..., None] = print,
        speed: float = 1.0,
        **_: Any,
    ) -> tuple[np.ndarray, int, None]:
        # api.py 122: the reference and its transcript go through preprocess_ref_audio_text.
        ref_file, ref_text = preprocess_ref_audio_text(ref_file, ref_text, show_info=show_info)
        CONDITIONED_ON.append((sf.info(ref_file).duration, ref_text))
        rate = self.target_sample_rate
        t = np.arange(int(0.07 * len(gen_text) / speed * rate)) / rate
        wav = 0.3 * np.sin(2 * np.pi * 140 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t))
        return wav.astype(np.float32), rate, None  # api.py 124-149: wav, sr, spec
