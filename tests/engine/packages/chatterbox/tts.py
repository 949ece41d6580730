"""Reproduces ``src/chatterbox/tts.py``'s ``ChatterboxTTS`` with the model stubbed: it speaks a buzz."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import perth
import torch

S3GEN_SR = 24000
SPEECH_TOKENS_PER_S = 25  # S3 speech tokens


class ChatterboxTTS:
    def __init__(self, device: str) -> None:
        self.sr = S3GEN_SR  # tts.py 119
        self.device = device
        # tts.py 126: the PerTh watermarker is built at construction. resemble-perth sets
        # PerthImplicitWatermarker to None when its network cannot be imported (upstream issue
        # 198), and calling None raises TypeError. The stand-in builds it but, unlike upstream,
        # does not apply it in generate (clonegate marks every output itself).
        self.watermarker = perth.PerthImplicitWatermarker()

    @classmethod
    def from_local(cls, ckpt_dir: str, device: str) -> ChatterboxTTS:
        # tts.py 129-165: ve, t3_cfg and s3gen safetensors and tokenizer.json from the folder.
        for name in ("ve.safetensors", "t3_cfg.safetensors", "s3gen.safetensors", "tokenizer.json"):
            if not (Path(ckpt_dir) / name).is_file():
                raise FileNotFoundError(Path(ckpt_dir) / name)
        return cls(device)

    def generate(
        self, text: str, audio_prompt_path: str | None = None, exaggeration: float = 0.5, cfg_weight: float = 0.5
    ) -> torch.Tensor:
        if audio_prompt_path is None or not Path(audio_prompt_path).is_file():
            raise AssertionError("Please `prepare_conditionals` first or specify `audio_prompt_path`")
        # tts.py 246-255: at most max_new_tokens=1000 speech tokens, 40 s; the stand-in speaks
        # 0.07 s per character, and a text with RUNAWAY misses its stop token.
        seconds = 0.07 * len(text)
        if "RUNAWAY" in text:
            seconds = 1000 / SPEECH_TOKENS_PER_S
        seconds = min(seconds, 1000 / SPEECH_TOKENS_PER_S)
        t = np.arange(int(seconds * self.sr)) / self.sr
        wav = 0.3 * np.sin(2 * np.pi * 140 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t))
        return torch.from_numpy(wav.astype(np.float32)).unsqueeze(0)  # tts.py 272: shape (1, samples)
