"""``clonegate watermark embed|detect`` end to end, with key files as an operator would use them."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
import soundfile as sf

from gateway.cli import main


@pytest.fixture()
def key_file(tmp_path, monkeypatch):
    path = tmp_path / "watermark.key"
    path.write_bytes(bytes(range(32)))
    monkeypatch.setenv("CLONEGATE_WATERMARK_KEY_FILE", str(path))
    monkeypatch.setenv("CLONEGATE_WATERMARK_SCHEMES", '["keyed"]')
    monkeypatch.setenv("CLONEGATE_WATERMARK_DETECT_ONLY", "[]")
    monkeypatch.setenv("CLONEGATE_DATA_DIR", str(tmp_path / "data"))
    return path


@pytest.fixture()
def speech_wav(speech_dir, tmp_path):
    samples, rate = sf.read(speech_dir / "en_andrew.wav")
    path = tmp_path / "speech.wav"
    sf.write(path, samples, rate)
    return path


def _detect_json(path, capsys) -> tuple[int, dict]:
    capsys.readouterr()
    code = main(["watermark", "detect", str(path), "--json"])
    return code, json.loads(capsys.readouterr().out)


def test_embed_then_detect_json(key_file, speech_wav, tmp_path, capsys):
    out = tmp_path / "marked.flac"
    assert main(["watermark", "embed", str(speech_wav), str(out), "--payload", "0badf00d"]) == 0
    code, result = _detect_json(out, capsys)
    assert code == 0 and result["detected"] is True
    (keyed,) = result["schemes"]
    assert keyed["name"] == "keyed" and keyed["payload"] == "0badf00d" and keyed["payload_verified"]
    assert keyed["false_positive_probability"] < 1e-9
    assert all(len(seg) == 3 for seg in keyed["segments"])


def test_detects_after_mp3_and_ogg(key_file, speech_wav, tmp_path, capsys):
    marked = tmp_path / "marked.wav"
    assert main(["watermark", "embed", str(speech_wav), str(marked), "--payload", "00000001"]) == 0
    for suffix, codec in ((".mp3", ["-b:a", "64k"]), (".ogg", ["-c:a", "libvorbis"])):
        coded = tmp_path / f"coded{suffix}"
        subprocess.run(
            ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", str(marked), *codec, str(coded)], check=True
        )
        code, result = _detect_json(coded, capsys)
        assert code == 0 and result["schemes"][0]["payload"] == "00000001", suffix


def test_detect_with_another_key_finds_no_payload(key_file, speech_wav, tmp_path, capsys, monkeypatch):
    out = tmp_path / "marked.wav"
    assert main(["watermark", "embed", str(speech_wav), str(out), "--payload", "0badf00d"]) == 0
    other = tmp_path / "other.key"
    other.write_bytes(b"\xff" * 32)
    monkeypatch.setenv("CLONEGATE_WATERMARK_KEY_FILE", str(other))
    code, result = _detect_json(out, capsys)
    assert code == 1 and result["detected"] is False
    assert result["schemes"][0]["payload"] is None and not result["schemes"][0]["payload_verified"]


def test_unmarked_file_exits_not_detected(key_file, speech_wav, capsys):
    code, result = _detect_json(speech_wav, capsys)
    assert code == 1 and not result["detected"]


def test_prod_mode_refuses_to_run_without_a_key_file(speech_wav, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CLONEGATE_MODE", "prod")
    monkeypatch.delenv("CLONEGATE_WATERMARK_KEY_FILE", raising=False)
    assert main(["watermark", "detect", str(speech_wav)]) == 2
    assert "CLONEGATE_WATERMARK_KEY_FILE" in capsys.readouterr().err


def test_bad_payload_and_unreadable_input_are_errors(key_file, speech_wav, tmp_path, capsys):
    assert main(["watermark", "embed", str(speech_wav), str(tmp_path / "o.wav"), "--payload", "zz"]) == 2
    assert main(["watermark", "embed", str(speech_wav), str(tmp_path / "o.wav"), "--payload", "0011"]) == 2
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"not audio at all" * 10)
    assert main(["watermark", "detect", str(garbage)]) == 2


def test_default_stack_marks_keyed_and_looks_for_perth(key_file, speech_wav, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("CLONEGATE_WATERMARK_SCHEMES")
    monkeypatch.delenv("CLONEGATE_WATERMARK_DETECT_ONLY")
    out = tmp_path / "marked.wav"
    assert main(["watermark", "embed", str(speech_wav), str(out), "--payload", "cafef00d"]) == 0
    code, result = _detect_json(out, capsys)
    assert code == 0 and result["detected"] and result["verdict_basis"] == ["keyed"]
    assert [(s["name"], s["detected"]) for s in result["schemes"]] == [("keyed", True), ("perth", False)]
    assert np.isfinite(sf.read(out)[0]).all()


def test_detect_says_a_negative_is_not_evidence_of_human_origin(key_file, speech_wav, capsys):
    from gateway.detection.verdict import NOT_EVIDENCE_OF_HUMAN_ORIGIN

    capsys.readouterr()
    assert main(["watermark", "detect", str(speech_wav)]) == 1  # unmarked
    text = capsys.readouterr().out
    assert "verdict: No clonegate mark was found" in text
    assert NOT_EVIDENCE_OF_HUMAN_ORIGIN in text and "C2PA" in text and "audit log" in text
    code, result = _detect_json(speech_wav, capsys)
    assert code == 1 and result["verdict"]["not_evidence_of_human_origin"] == NOT_EVIDENCE_OF_HUMAN_ORIGIN
