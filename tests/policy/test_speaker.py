"""Speaker embedders: real resemblyzer weights on real speech, a real ONNX model file built here."""

from __future__ import annotations

import itertools
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
    WINDOW_SECONDS,
    ResemblyzerEmbedder,
    SpeakerEmbedder,
    WindowFusionEmbedder,
    cosine,
    fuse_embeddings,
    sha256_of_file,
    window_spans,
)
from policy.speaker_onnx import FBANK_BINS, OnnxModelSpec, OnnxSpeakerEmbedder, fbank80

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

    def __init__(self, dimension: int, bins: int = FBANK_BINS) -> None:
        super().__init__()
        self.conv = torch.nn.Conv1d(bins, 32, kernel_size=5, padding=2)
        self.head = torch.nn.Linear(64, dimension)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        hidden = torch.relu(self.conv(feats.transpose(1, 2)))
        pooled = torch.cat([hidden.mean(dim=2), hidden.std(dim=2)], dim=1)
        return self.head(pooled)


def _export(
    path: Path, *, dimension: int, names: tuple[str, str], bins: int = FBANK_BINS, dynamic_batch: bool = False
) -> Path:
    """Exported the way upstream exports do: WeSpeaker's wespeaker/bin/export_onnx.py names the
    [B, T, 80] input ``feats`` and the output ``embs`` with dynamic B and T; 3D-Speaker's
    speakerlab/bin/export_speaker_embedding_onnx.py uses ``feature`` / ``embedding``."""
    torch.manual_seed(0)
    input_name, output_name = names
    axes = {input_name: {0: "B", 1: "T"}, output_name: {0: "B"}} if dynamic_batch else {input_name: {1: "T"}}
    torch.onnx.export(
        _TinySpeakerNet(dimension=dimension, bins=bins).eval(),
        (torch.randn(1, 200, bins),),
        str(path),
        input_names=[input_name],
        output_names=[output_name],
        dynamic_axes=axes,
        dynamo=False,
    )
    return path


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _export(tmp_path_factory.mktemp("onnx") / "tiny_speaker.onnx", dimension=24, names=("feats", "embedding"))


def test_onnx_embedder_loads_pinned_model_and_embeds(onnx_model: Path, speech_dir: Path) -> None:
    spec = OnnxModelSpec(path=onnx_model, sha256=sha256_of_file(onnx_model), dimension=24, name="tiny")
    onnx_embedder = OnnxSpeakerEmbedder(spec)
    assert isinstance(onnx_embedder, SpeakerEmbedder)
    assert onnx_embedder.name == f"tiny-{sha256_of_file(onnx_model)[:12]}"
    audio, rate = _clip(speech_dir, "en_andrew")
    first = onnx_embedder.embed(audio, sample_rate=rate)
    again = onnx_embedder.embed(audio, sample_rate=rate)
    other_audio, other_rate = _clip(speech_dir, "de_Anka")
    other = onnx_embedder.embed(other_audio, sample_rate=other_rate)
    assert first.shape == (24,) and first.dtype == np.float32
    assert abs(float(np.linalg.norm(first)) - 1.0) < 1e-5
    assert np.array_equal(first, again)
    assert not np.allclose(first, other)


@pytest.mark.parametrize(
    ("names", "dynamic_batch"), [(("feats", "embs"), True), (("feature", "embedding"), True), (("x", "y"), False)]
)
def test_onnx_embedding_size_and_names_read_from_the_model(
    tmp_path: Path, speech_dir: Path, names: tuple[str, str], dynamic_batch: bool
) -> None:
    path = _export(tmp_path / "model.onnx", dimension=40, names=names, dynamic_batch=dynamic_batch)
    embedder = OnnxSpeakerEmbedder(OnnxModelSpec(path=path, sha256=sha256_of_file(path), name="m"))
    assert embedder.dimension == 40
    audio, rate = _clip(speech_dir, "en_ashley")
    assert embedder.embed(audio, sample_rate=rate).shape == (40,)


def test_onnx_embedding_size_probed_when_the_model_leaves_it_symbolic(tmp_path: Path) -> None:
    import onnx

    path = _export(tmp_path / "model.onnx", dimension=32, names=("feats", "embs"), dynamic_batch=True)
    model = onnx.load(str(path))
    model.graph.output[0].type.tensor_type.shape.dim[1].dim_param = "D"
    onnx.save(model, str(path))
    embedder = OnnxSpeakerEmbedder(OnnxModelSpec(path=path, sha256=sha256_of_file(path), name="m"))
    assert embedder.dimension == 32


def test_onnx_model_fed_exactly_the_fbank_front_end(onnx_model: Path, speech_dir: Path) -> None:
    """What reaches the model is fbank80 of the 16 kHz speech: the embedding equals running the
    same ONNX file by hand on those features."""
    import onnxruntime

    from policy.speaker import speech_for_model

    audio, rate = _clip(speech_dir, "en_andrew")
    spec = OnnxModelSpec(path=onnx_model, sha256=sha256_of_file(onnx_model), name="tiny")
    embedded = OnnxSpeakerEmbedder(spec).embed(audio, sample_rate=rate)
    speech = speech_for_model(audio, sample_rate=rate, raise_volume=False)
    session = onnxruntime.InferenceSession(str(onnx_model), providers=["CPUExecutionProvider"])
    (by_hand,) = session.run(None, {"feats": fbank80(speech)[np.newaxis]})
    assert np.allclose(embedded, by_hand[0] / np.linalg.norm(by_hand[0]), atol=1e-5)


def test_fbank80_is_wespeakers_inference_front_end(speech_dir: Path) -> None:
    """25 ms / 10 ms frames of 80 bins without edge padding (Kaldi's snip_edges), int16 scale,
    mean-normalised per bin and not variance-normalised, as wespeaker/bin/infer_onnx.py does."""
    import torchaudio.compliance.kaldi as kaldi

    speech = (0.3 * np.sin(2 * np.pi * 180 * np.arange(16_000 * 2) / 16_000)).astype(np.float32)
    speech += np.random.default_rng(0).normal(0, 0.01, speech.size).astype(np.float32)
    feats = fbank80(speech)
    assert feats.shape == (1 + (speech.size - 400) // 160, 80)
    assert np.allclose(feats.mean(axis=0), 0.0, atol=1e-4)
    assert float(feats.std(axis=0).max()) > 1.5  # no variance normalisation
    raw = kaldi.fbank(torch.from_numpy(speech * 32768.0)[None], num_mel_bins=80, dither=0.0, window_type="hamming")
    assert np.allclose(feats, (raw - raw.mean(dim=0)).numpy(), atol=1e-4)
    # Gain disappears in the mean normalisation, which is why no loudness raise precedes it.
    assert np.allclose(fbank80(speech * 0.25), feats, atol=1e-3)


def test_onnx_model_with_other_feature_size_refused(tmp_path: Path) -> None:
    path = _export(tmp_path / "m64.onnx", dimension=24, names=("feats", "embs"), bins=64)
    with pytest.raises(SpeakerModelError, match="64 feature bins"):
        OnnxSpeakerEmbedder(OnnxModelSpec(path=path, sha256=sha256_of_file(path), name="m"))


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


def test_corrupt_onnx_file_refused(tmp_path: Path) -> None:
    path = tmp_path / "garbage.onnx"
    path.write_bytes(b"not a model")
    with pytest.raises(SpeakerModelError):
        OnnxSpeakerEmbedder(OnnxModelSpec(path=path, sha256=sha256_of_file(path), name="g"))


# --- evidence: whole signal and windows, fused ------------------------------------------------


def test_window_spans_cover_the_clip_with_half_overlap() -> None:
    rate = 16_000
    assert window_spans(rate * 2, sample_rate=rate) == [(0, rate * 2)]
    spans = window_spans(int(rate * 7.2), sample_rate=rate)
    window = int(WINDOW_SECONDS * rate)
    assert all(end - start == window for start, end in spans)
    assert spans[0][0] == 0 and spans[-1][1] == int(rate * 7.2)
    assert all(b[0] - a[0] <= window // 2 for a, b in itertools.pairwise(spans))


def test_window_fusion_is_the_mean_of_whole_and_windows(embedder: ResemblyzerEmbedder, speech_dir: Path) -> None:
    audio, rate = _clip(speech_dir, "en_andrew")
    fused = WindowFusionEmbedder(embedder)
    assert fused.name == embedder.name + "+windows3s" and fused.dimension == embedder.dimension
    vectors = [embedder.embed(audio, sample_rate=rate)]
    vectors += [embedder.embed(audio[a:b], sample_rate=rate) for a, b in window_spans(audio.size, sample_rate=rate)]
    assert len(vectors) > 2
    assert np.allclose(fused.embed(audio, sample_rate=rate), fuse_embeddings(vectors), atol=1e-6)


def test_fusing_nothing_or_opposites_refused() -> None:
    with pytest.raises(EmbeddingInvalid):
        fuse_embeddings([])
    vector = np.ones(8, dtype=np.float32) / np.sqrt(8)
    with pytest.raises(EmbeddingInvalid):
        fuse_embeddings([vector, -vector])
