"""``clonegate blocklist calibrate`` and ``reembed``.

Calibrate: a labelled set of real recordings in, a calibration bound to the configured model out;
the gateway accepts it for that model and for no other. Reembed: the list moves to another model
from the entries' own recordings."""

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
    strict = tmp_path / "strict.json"
    assert (
        main(["blocklist", "calibrate", str(labelled_set), "--output", str(strict), "--consent-false-match", "0.001"])
        == 0
    )
    assert ScoreCalibration.read(strict).consent_match > ScoreCalibration.read(small).consent_match
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


def test_reembed_moves_the_list_to_the_configured_model(
    speech_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """An entry listed under resemblyzer moves to the window-fused model when its original
    recordings are supplied; run without one of them, it stays behind and the command says so."""
    from gateway.audio_io import decode_audio
    from gateway.db import create_db_engine, make_session_factory
    from policy.blocklist.models import ProtectedSpeaker
    from policy.blocklist.repository import AudioSample, add_protected_speaker

    data = tmp_path / "data"
    upgrade(Settings(data_dir=data).resolved_database_url)
    audio, rate = soundfile.read(speech_dir / "en_daniel.wav", dtype="float32")
    files = []
    for part, piece in enumerate(np.array_split(audio, 2)):
        soundfile.write(tmp_path / f"sample{part}.wav", piece, rate)
        files.append(tmp_path / f"sample{part}.wav")
    decoded = [decode_audio(path.read_bytes()) for path in files]
    engine = create_db_engine(Settings(data_dir=data).resolved_database_url)
    with make_session_factory(engine)() as session:
        entry = add_protected_speaker(
            session,
            embedder=ResemblyzerEmbedder(),
            name="Daniel Example",
            reason="public figure",
            source="test",
            samples=[AudioSample(d.samples, d.sample_rate) for d in decoded],
            actor="test",
        )
        session.commit()
        entry_id = entry.id
    monkeypatch.setenv("CLONEGATE_DATA_DIR", str(data))
    monkeypatch.setenv("CLONEGATE_SPEAKER_WINDOW_FUSION", "true")
    assert main(["blocklist", "reembed", str(files[0])]) == 1
    assert f"entry {entry_id}: 1 sample(s) not among the files" in capsys.readouterr().err
    assert main(["blocklist", "reembed", *map(str, files)]) == 0
    assert "1 entries re-embedded" in capsys.readouterr().out
    with make_session_factory(engine)() as session:
        assert session.get(ProtectedSpeaker, entry_id).embedder_name == ResemblyzerEmbedder().name + "+windows3s"
    engine.dispose()
