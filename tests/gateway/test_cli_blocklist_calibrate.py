"""``clonegate blocklist calibrate``: a labelled set of real recordings in, a calibration bound to
the configured model out; the gateway accepts it for that model and for no other."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from gateway.cli import main
from gateway.components import load_calibration
from gateway.db import upgrade
from gateway.settings import Settings, SettingsError
from policy.blocklist.calibration import ScoreCalibration
from policy.speaker import ResemblyzerEmbedder

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def labelled_set(speech_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Twelve English speakers, each clip cut into three recordings, one folder per speaker."""
    root = tmp_path_factory.mktemp("labelled")
    for clip in sorted(speech_dir.glob("en_*.wav"))[:12]:
        audio, rate = soundfile.read(clip, dtype="float32")
        folder = root / clip.stem
        folder.mkdir()
        for part, piece in enumerate(np.array_split(audio, 3)):
            soundfile.write(folder / f"{part}.wav", piece, rate)
    return root


@pytest.fixture(scope="module")
def data_dir(speech_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A gateway data folder whose cohort holds eight German speakers."""
    folder = tmp_path_factory.mktemp("data")
    upgrade(Settings(data_dir=folder).resolved_database_url)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CLONEGATE_DATA_DIR", str(folder))
        cohort = [str(p) for p in sorted(speech_dir.glob("de_*.wav"))[:8]]
        assert main(["blocklist", "cohort", "add", *cohort]) == 0
    return folder


def test_calibrate_writes_a_calibration_the_gateway_loads_for_that_model_only(
    labelled_set: Path, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setenv("CLONEGATE_DATA_DIR", str(data_dir))
    output = tmp_path / "calibration.json"
    assert main(["blocklist", "calibrate", str(labelled_set), "--output", str(output), "--list-size", "100"]) == 0
    assert "CLONEGATE_SPEAKER_CALIBRATION_FILE" in capsys.readouterr().out
    calibration = ScoreCalibration.read(output)
    model_id = ResemblyzerEmbedder().name
    assert calibration.model_id == model_id
    assert calibration.normalization == "as-norm" and calibration.cohort_centering
    assert calibration.review <= calibration.deny
    assert "12 speakers, 36 recordings, 72 target" in calibration.source
    loaded = load_calibration(Settings(data_dir=data_dir, speaker_calibration_file=output), model_id=model_id)
    assert loaded == calibration
    with pytest.raises(SettingsError, match="calibrate"):
        load_calibration(Settings(data_dir=data_dir, speaker_calibration_file=output), model_id="onnx-0123456789ab")


def test_calibrate_options_change_the_thresholds(
    labelled_set: Path, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLONEGATE_DATA_DIR", str(data_dir))
    small, large = tmp_path / "small.json", tmp_path / "large.json"
    assert main(["blocklist", "calibrate", str(labelled_set), "--output", str(small), "--list-size", "10"]) == 0
    assert main(["blocklist", "calibrate", str(labelled_set), "--output", str(large), "--list-size", "100000"]) == 0
    assert ScoreCalibration.read(large).deny > ScoreCalibration.read(small).deny
    top = tmp_path / "top.json"
    args = ["blocklist", "calibrate", str(labelled_set), "--output", str(top), "--normalization", "top-norm"]
    assert main([*args, "--no-centering"]) == 0
    assert ScoreCalibration.read(top).normalization == "top-norm"
    assert not ScoreCalibration.read(top).cohort_centering


def test_calibrate_refuses_a_set_without_two_speakers(
    speech_dir: Path, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setenv("CLONEGATE_DATA_DIR", str(data_dir))
    (tmp_path / "only").mkdir()
    (tmp_path / "only" / "a.wav").write_bytes((speech_dir / "en_andrew.wav").read_bytes())
    output = tmp_path / "out.json"
    assert main(["blocklist", "calibrate", str(tmp_path), "--output", str(output)]) == 2
    assert "at least two speakers" in capsys.readouterr().err
    assert not output.exists()


def test_calibrate_refuses_without_a_cohort(
    labelled_set: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
):
    empty = tmp_path / "empty"
    upgrade(Settings(data_dir=empty).resolved_database_url)
    monkeypatch.setenv("CLONEGATE_DATA_DIR", str(empty))
    assert main(["blocklist", "calibrate", str(labelled_set), "--output", str(tmp_path / "x.json")]) == 2
    assert "cohort" in capsys.readouterr().err


def test_model_without_a_calibration_refused(tmp_path: Path) -> None:
    """A model for which none ships and none is configured cannot start the gateway."""
    with pytest.raises(SettingsError, match="no speaker calibration"):
        load_calibration(Settings(data_dir=tmp_path), model_id="onnx-0123456789ab")


def test_threshold_overrides_apply_on_top_of_the_calibration(tmp_path: Path) -> None:
    model_id = ResemblyzerEmbedder().name
    settings = Settings(data_dir=tmp_path, blocklist_deny_threshold=1000.0)
    calibration = load_calibration(settings, model_id=model_id)
    assert calibration.deny == 1000.0
    with pytest.raises(SettingsError):
        load_calibration(Settings(data_dir=tmp_path, blocklist_review_threshold=2000.0), model_id=model_id)
