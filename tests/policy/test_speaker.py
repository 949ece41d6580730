"""Speaker embedders: real resemblyzer weights on real speech, a real ONNX model file built here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from policy.errors import (
    AudioClipped,
    AudioEmpty,
    AudioNotFinite,
    AudioSampleRateUnsupported,
    AudioSilent,
    AudioTooLong,
    AudioTooShort,
    AudioWrongShape,
    EmbeddingInvalid,
    SpeakerModelError,
    SpeakerModelHashMismatch,
)
from policy.speaker import (
    OnnxModelSpec,
    OnnxSpeakerEmbedder,
    ResemblyzerEmbedder,
    SpeakerEmbedder,
    cosine,
    sha256_of_file,
)

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def embedder() -> ResemblyzerEmbedder:
    return ResemblyzerEmbedder()


def _clip(speech_dir: Path, name: str) -> tuple[np.ndarray, int]:
    audio, rate = soundfile.read(speech_dir / f"{name}.wav", dtype="float32")
    return audio, rate


def test_resemblyzer_satisfies_interface(embedder: ResemblyzerEmbedder) -> None:
    assert isinstance(embedder, SpeakerEmbedder)
    assert embedder.dimension == 256
    assert embedder.name.startswith("resemblyzer-")


def test_same_speaker_scores_above_other_speakers(embedder: ResemblyzerEmbedder, speech_dir: Path) -> None:
    audio, rate = _clip(speech_dir, "en_andrew")
    half = audio.size // 2
    first = embedder.embed(audio[:half], sample_rate=rate)
    second = embedder.embed(audio[half:], sample_rate=rate)
    assert first.dtype == np.float32 and first.shape == (256,)
    assert abs(float(np.linalg.norm(first)) - 1.0) < 1e-5
    same = cosine(first, second)
    others = []
    for name in ("en_ashley", "de_Anka"):
        other_audio, other_rate = _clip(speech_dir, name)
        others.append(cosine(first, embedder.embed(other_audio, sample_rate=other_rate)))
    assert same > 0.8
    assert same > max(others)


def test_resampling_is_applied(embedder: ResemblyzerEmbedder, speech_dir: Path) -> None:
    audio, rate = _clip(speech_dir, "en_andrew")
    at_rate = embedder.embed(audio, sample_rate=rate)
    from policy.speaker import resample

    at_16k = embedder.embed(resample(audio, from_rate=rate, to_rate=16_000), sample_rate=16_000)
    assert cosine(at_rate, at_16k) > 0.99


@pytest.mark.parametrize(
    ("audio", "rate", "error"),
    [
        (np.zeros(0, dtype=np.float32), 16_000, AudioEmpty),
        (np.full(32_000, np.nan, dtype=np.float32), 16_000, AudioNotFinite),
        (np.zeros((32_000, 2), dtype=np.float32), 16_000, AudioWrongShape),
        (np.zeros(32_000, dtype=np.int16), 16_000, AudioWrongShape),
        (np.zeros(32_000, dtype=np.float32), 16_000, AudioSilent),
        (np.full(32_000, 300.0, dtype=np.float32), 16_000, AudioClipped),
        (np.zeros(32_000, dtype=np.float32), 4_000, AudioSampleRateUnsupported),
        (np.zeros(16_000 * 301, dtype=np.float32), 16_000, AudioTooLong),
    ],
    ids=["empty", "nan", "stereo", "int_pcm", "silent", "out_of_range", "low_rate", "huge"],
)
def test_bad_audio_rejected_with_specific_error(
    embedder: ResemblyzerEmbedder, audio: np.ndarray, rate: int, error: type[Exception]
) -> None:
    with pytest.raises(error):
        embedder.embed(audio, sample_rate=rate)


def test_too_little_speech_rejected(embedder: ResemblyzerEmbedder, speech_dir: Path) -> None:
    audio, rate = _clip(speech_dir, "en_andrew")
    with pytest.raises(AudioTooShort):
        embedder.embed(audio[: rate // 2], sample_rate=rate)


def test_cosine_refuses_mismatched_or_zero_vectors() -> None:
    with pytest.raises(EmbeddingInvalid):
        cosine(np.ones(3), np.ones(4))
    with pytest.raises(EmbeddingInvalid):
        cosine(np.zeros(3), np.ones(3))
    assert cosine(np.array([1.0, 0.0]), np.array([0.0, 2.0])) == pytest.approx(0.0)


def test_replaced_resemblyzer_weights_refused(tmp_path: Path) -> None:
    import resemblyzer

    original = Path(resemblyzer.__file__).parent / "pretrained.pt"
    tampered = tmp_path / "pretrained.pt"
    tampered.write_bytes(original.read_bytes() + b"\0")
    with pytest.raises(SpeakerModelHashMismatch):
        ResemblyzerEmbedder(weights_path=tampered)


# --- ONNX: a small speaker model exported here in the real file format -----------------------


class _TinySpeakerNet(torch.nn.Module):
    """fbank frames -> conv -> statistics pooling -> linear: the shape of real x-vector exports."""

    def __init__(self, dimension: int) -> None:
        super().__init__()
        self.conv = torch.nn.Conv1d(80, 32, kernel_size=5, padding=2)
        self.head = torch.nn.Linear(64, dimension)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        hidden = torch.relu(self.conv(feats.transpose(1, 2)))
        pooled = torch.cat([hidden.mean(dim=2), hidden.std(dim=2)], dim=1)
        return self.head(pooled)


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("onnx") / "tiny_speaker.onnx"
    torch.onnx.export(
        _TinySpeakerNet(dimension=24).eval(),
        (torch.randn(1, 200, 80),),
        str(path),
        input_names=["feats"],
        output_names=["embedding"],
        dynamic_axes={"feats": {1: "frames"}},
        dynamo=False,
    )
    return path


def test_onnx_embedder_loads_pinned_model_and_embeds(onnx_model: Path, speech_dir: Path) -> None:
    spec = OnnxModelSpec(path=onnx_model, sha256=sha256_of_file(onnx_model), dimension=24, name="tiny")
    onnx_embedder = OnnxSpeakerEmbedder(spec)
    assert isinstance(onnx_embedder, SpeakerEmbedder)
    audio, rate = _clip(speech_dir, "en_andrew")
    first = onnx_embedder.embed(audio, sample_rate=rate)
    again = onnx_embedder.embed(audio, sample_rate=rate)
    other_audio, other_rate = _clip(speech_dir, "de_Anka")
    other = onnx_embedder.embed(other_audio, sample_rate=other_rate)
    assert first.shape == (24,) and first.dtype == np.float32
    assert abs(float(np.linalg.norm(first)) - 1.0) < 1e-5
    assert np.array_equal(first, again)
    assert not np.allclose(first, other)


def test_onnx_model_with_wrong_sha256_refused(onnx_model: Path, tmp_path: Path) -> None:
    pinned = sha256_of_file(onnx_model)
    swapped = tmp_path / "swapped.onnx"
    data = bytearray(onnx_model.read_bytes())
    data[-1] ^= 0x01
    swapped.write_bytes(bytes(data))
    with pytest.raises(SpeakerModelHashMismatch):
        OnnxSpeakerEmbedder(OnnxModelSpec(path=swapped, sha256=pinned, dimension=24, name="tiny"))


def test_onnx_model_with_wrong_dimension_refused(onnx_model: Path) -> None:
    spec = OnnxModelSpec(path=onnx_model, sha256=sha256_of_file(onnx_model), dimension=192, name="tiny")
    with pytest.raises(SpeakerModelError):
        OnnxSpeakerEmbedder(spec)


def test_onnx_model_missing_file_refused(tmp_path: Path) -> None:
    spec = OnnxModelSpec(path=tmp_path / "absent.onnx", sha256="0" * 64, dimension=24, name="tiny")
    with pytest.raises(SpeakerModelError):
        OnnxSpeakerEmbedder(spec)
