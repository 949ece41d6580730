"""AudioSeal as a public layer with a 16-bit message, from operator-installed local checkpoints.

AudioSeal's own loader downloads from the network and unpickles with ``weights_only=False``.
This loader reads a local file, refuses it unless its sha256 matches the configured one, and
only then deserialises the same bytes with ``weights_only=True`` (or safetensors), so the file
that is checked is the file that is loaded. The architecture comes from AudioSeal's bundled
model cards; ``architecture`` overrides their SEANet fields (used for a small test checkpoint).
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from .audio import mono_for_detection, mono_for_embedding, resample
from .detection import Detection, Segment
from .errors import WatermarkConfigError, WatermarkModelError

AUDIOSEAL_RATE = 16_000
NBITS = 16
SEGMENT_S = 0.5


@dataclass(frozen=True)
class AudioSealFiles:
    generator_path: Path
    generator_sha256: str
    detector_path: Path
    detector_sha256: str
    message: int = 0xC10E  # public: the layer proves nothing about who made the audio
    architecture: dict[str, Any] = field(default_factory=dict)


def read_verified(path: Path, expected_sha256: str) -> bytes:
    """The file's bytes, only if their sha256 is the configured one."""
    if not expected_sha256 or len(expected_sha256) != 64:
        raise WatermarkModelError(f"no valid sha256 configured for {path}: refusing to load an unpinned checkpoint")
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise WatermarkModelError(f"cannot read AudioSeal checkpoint {path}: {exc}") from exc
    digest = hashlib.sha256(data).hexdigest()
    if digest != expected_sha256.lower():
        raise WatermarkModelError(f"AudioSeal checkpoint {path} has sha256 {digest}, expected {expected_sha256}")
    return data


def state_dict_from_bytes(data: bytes, path: Path) -> dict[str, Any]:
    """Tensors from a safetensors file or a torch checkpoint that loads with ``weights_only=True``."""
    import torch

    if str(path).endswith(".safetensors"):
        try:
            from safetensors.torch import load as load_safetensors
        except ImportError as exc:
            raise WatermarkModelError("a .safetensors checkpoint needs the safetensors package") from exc
        tensors: dict[str, Any] = load_safetensors(data)
        return tensors
    try:
        checkpoint = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError... for unsafe or corrupt files
        raise WatermarkModelError(
            f"{path} is not a weights-only checkpoint ({type(exc).__name__}); convert it as docs/operations.md describes"
        ) from exc
    if isinstance(checkpoint, dict) and "best_state" in checkpoint:
        checkpoint = checkpoint["best_state"]["model"]
    elif isinstance(checkpoint, dict) and "model" in checkpoint:
        checkpoint = checkpoint["model"]
    if not isinstance(checkpoint, dict) or not all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        raise WatermarkModelError(f"{path} does not hold an AudioSeal state dict")
    return checkpoint


def _model_config(card: str, config_type: Any, architecture: dict[str, Any]) -> Any:
    from audioseal.loader import AudioSeal, load_local_model_config
    from omegaconf import OmegaConf

    card_config = load_local_model_config(card)
    if card_config is None:
        raise WatermarkConfigError(f"audioseal has no bundled model card {card}")
    config = OmegaConf.to_container(card_config)
    if not isinstance(config, dict):
        raise WatermarkConfigError(f"audioseal model card {card} is not a mapping")
    settings = {str(name): value for name, value in config.items() if name != "checkpoint"}  # an address: never used
    settings["seanet"].update(architecture)
    return AudioSeal.parse_config(settings, config_type=config_type, nbits=NBITS)


def load_models(files: AudioSealFiles) -> tuple[Any, Any]:
    """Generator and detector from verified local files; any failure raises WatermarkModelError."""
    from audioseal.builder import AudioSealDetectorConfig, AudioSealWMConfig, create_detector, create_generator
    from audioseal.loader import convert_state_dict_for_scriptable_model, load_state_dict

    models: list[Any] = []
    for card, config_type, create, path, sha in (
        ("audioseal_wm_16bits", AudioSealWMConfig, create_generator, files.generator_path, files.generator_sha256),
        (
            "audioseal_detector_16bits",
            AudioSealDetectorConfig,
            create_detector,
            files.detector_path,
            files.detector_sha256,
        ),
    ):
        state = state_dict_from_bytes(read_verified(Path(path), sha), Path(path))
        model = create(_model_config(card, config_type, files.architecture))
        try:
            load_state_dict(model, convert_state_dict_for_scriptable_model(state))
        except (RuntimeError, AssertionError, KeyError, AttributeError) as exc:
            raise WatermarkModelError(f"{path} does not fit the AudioSeal architecture: {exc}") from exc
        models.append(model.eval())
    return models[0], models[1]


class AudioSealScheme:
    """Public neural layer; ``score`` is the mean frame detection probability (no analytic null)."""

    name = "audioseal"

    def __init__(self, files: AudioSealFiles, *, threshold: float = 0.5) -> None:
        import torch

        if not 0 <= files.message < 2**NBITS:
            raise WatermarkConfigError(f"AudioSeal message must fit in {NBITS} bits")
        eager: Any
        try:  # AudioSeal's SEANet asks torch.compile for its blocks: minutes of C++ build on a CPU host
            from audioseal.libs.moshi.utils.compile import no_compile as eager
        except ImportError:  # older audioseal without the moshi backbone compiles nothing
            from contextlib import nullcontext as eager
        self._eager = eager
        self._torch = torch
        self._generator, self._detector = load_models(files)
        self._message = torch.tensor([[(files.message >> (NBITS - 1 - i)) & 1 for i in range(NBITS)]])
        self.threshold = threshold

    def embed(
        self, audio: npt.NDArray[np.floating], *, sample_rate: int, payload: bytes | None = None
    ) -> npt.NDArray[np.float64]:
        samples, rate = mono_for_embedding(audio, sample_rate=sample_rate)
        host = resample(samples, from_rate=rate, to_rate=AUDIOSEAL_RATE).astype(np.float32)
        with self._torch.no_grad(), self._eager():
            mark = (
                self._generator.get_watermark(
                    self._torch.from_numpy(host)[None, None], sample_rate=AUDIOSEAL_RATE, message=self._message
                )[0, 0]
                .numpy()
                .astype(np.float64)
            )
        delta = resample(mark, from_rate=AUDIOSEAL_RATE, to_rate=rate)
        delta = np.pad(delta, (0, max(0, samples.size - delta.size)))[: samples.size]
        out = samples + delta
        return np.asarray(np.clip(out, -1.0, 1.0) if np.max(np.abs(samples)) <= 1.0 else out, dtype=np.float64)

    def detect(self, audio: npt.NDArray[np.floating], *, sample_rate: int, segments: bool = True) -> Detection:
        samples, rate = mono_for_detection(audio, sample_rate=sample_rate)
        signal = resample(samples, from_rate=rate, to_rate=AUDIOSEAL_RATE).astype(np.float32)
        with self._torch.no_grad(), self._eager():
            frames, message = self._detector(self._torch.from_numpy(signal)[None, None], sample_rate=AUDIOSEAL_RATE)
        presence = frames[0, 1].numpy().astype(np.float64)  # probability of "marked" per sample
        score = float(presence.mean())
        bits = (message[0].numpy() > 0.5).astype(np.uint8)
        duration = samples.size / rate
        per = int(SEGMENT_S * AUDIOSEAL_RATE)
        found_segments = (
            tuple(
                Segment(
                    i * SEGMENT_S, min((i + 1) * SEGMENT_S, duration), float(presence[i * per : (i + 1) * per].mean())
                )
                for i in range(int(np.ceil(presence.size / per)))
            )
            if segments
            else ()
        )
        return Detection(
            scheme=self.name,
            detected=score >= self.threshold,
            score=score,
            false_positive_probability=None,
            payload=np.packbits(bits).tobytes(),  # the public 16-bit message, never authenticated
            payload_verified=False,
            segments=found_segments,
        )
