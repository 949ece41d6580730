"""The consent countermeasure from settings: off unless configured, all three settings together,
a model whose digest differs or that is not in AASIST's format refused at start-up, naming the
setting."""

from __future__ import annotations

import pytest

from gateway.components import build_countermeasure
from gateway.settings import Settings, SettingsError
from tests.policy.countermeasure_models import build_model


def test_no_countermeasure_unless_configured(tmp_path):
    assert build_countermeasure(Settings(mode="dev", data_dir=tmp_path)) is None


def test_configured_countermeasure_is_loaded_with_its_threshold(tmp_path):
    path = tmp_path / "aasist.onnx"
    digest = build_model(path)
    settings = Settings(
        mode="dev",
        data_dir=tmp_path,
        consent_countermeasure_model=path,
        consent_countermeasure_sha256=digest,
        consent_countermeasure_threshold=-1.5,
    )
    countermeasure = build_countermeasure(settings)
    assert countermeasure is not None and countermeasure.threshold == -1.5
    assert countermeasure.name == f"aasist-{digest[:12]}"


def test_rejects_a_countermeasure_without_its_threshold(tmp_path):
    path = tmp_path / "aasist.onnx"
    settings = Settings(
        mode="dev",
        data_dir=tmp_path,
        consent_countermeasure_model=path,
        consent_countermeasure_sha256=build_model(path),
    )
    with pytest.raises(SettingsError, match="CLONEGATE_CONSENT_COUNTERMEASURE_MODEL, _SHA256 and _THRESHOLD"):
        build_countermeasure(settings)


@pytest.mark.parametrize("problem", ["digest", "format"])
def test_rejects_a_swapped_or_foreign_countermeasure_model(tmp_path, problem):
    path = tmp_path / "aasist.onnx"
    digest = build_model(path, classes=3 if problem == "format" else 2)
    settings = Settings(
        mode="dev",
        data_dir=tmp_path,
        consent_countermeasure_model=path,
        consent_countermeasure_sha256="0" * 64 if problem == "digest" else digest,
        consent_countermeasure_threshold=0.0,
    )
    with pytest.raises(SettingsError, match="CLONEGATE_CONSENT_COUNTERMEASURE_MODEL"):
        build_countermeasure(settings)
