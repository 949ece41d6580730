"""Settings: dev defaults work with nothing configured; prod refuses every built-in secret."""

from __future__ import annotations

import pytest

from gateway.settings import DEV_JWT_SECRET, Settings, SettingsError, load_settings


def test_dev_defaults_need_no_configuration(tmp_path):
    settings = Settings(data_dir=tmp_path)
    assert settings.mode == "dev"
    assert settings.host == "127.0.0.1"
    assert settings.resolved_database_url == f"sqlite:///{(tmp_path / 'clonegate.db').resolve()}"
    assert settings.max_body_bytes == 50 * 1024 * 1024


def test_settings_read_from_prefixed_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("CLONEGATE_DATABASE_URL", "postgresql+psycopg://u@db/clonegate")
    monkeypatch.setenv("CLONEGATE_MAX_BODY_BYTES", "4096")
    settings = Settings(data_dir=tmp_path)
    assert settings.resolved_database_url == "postgresql+psycopg://u@db/clonegate"
    assert settings.max_body_bytes == 4096


def test_prod_refuses_dev_jwt_secret_naming_the_setting(tmp_path):
    with pytest.raises(SettingsError, match="CLONEGATE_JWT_SECRET"):
        load_settings(
            mode="prod",
            data_dir=tmp_path,
            jwt_algorithms=["RS256"],
            jwt_jwks_url="https://idp.example/jwks",
            jwt_issuer="https://idp.example",
        )


def test_prod_refuses_hs256(tmp_path):
    with pytest.raises(SettingsError, match="CLONEGATE_JWT_ALGORITHMS"):
        load_settings(
            mode="prod",
            data_dir=tmp_path,
            jwt_secret="a-real-secret-from-a-vault-0123456789",
            jwt_jwks_url="https://idp.example/jwks",
            jwt_issuer="https://idp.example",
        )


def test_prod_refuses_dev_issuer_and_missing_jwks(tmp_path):
    with pytest.raises(SettingsError) as error:
        load_settings(mode="prod", data_dir=tmp_path, jwt_algorithms=["ES256"], jwt_secret="x" * 40)
    assert "CLONEGATE_JWT_ISSUER" in str(error.value)
    assert "CLONEGATE_JWT_JWKS_FILE" in str(error.value)


def test_prod_refuses_every_unset_key_file(tmp_path):
    key_fields = [name for name in Settings.model_fields if name.endswith("_key_file")]
    assert {"audit_signing_key_file", "watermark_key_file", "voice_storage_key_file"} <= set(key_fields)
    with pytest.raises(SettingsError) as error:
        load_settings(
            mode="prod",
            data_dir=tmp_path,
            jwt_algorithms=["RS256"],
            jwt_secret="x" * 40,
            jwt_jwks_url="https://idp.example/jwks",
            jwt_issuer="https://idp.example",
        )
    for name in key_fields:
        assert f"CLONEGATE_{name.upper()}" in str(error.value)
    assert "CLONEGATE_C2PA_CERTIFICATE_CHAIN_FILE" in str(error.value)


def test_prod_accepts_complete_configuration(tmp_path):
    key_files = {}
    for name in Settings.model_fields:
        if name.endswith("_key_file"):
            path = tmp_path / f"{name}.key"
            path.write_bytes(b"k" * 32)
            key_files[name] = path
    settings = Settings(
        mode="prod",
        data_dir=tmp_path,
        jwt_algorithms=["RS256"],
        jwt_secret="x" * 40,
        jwt_jwks_url="https://idp.example/jwks",
        jwt_issuer="https://idp.example",
        c2pa_certificate_chain_file=tmp_path / "chain.pem",
        **key_files,
    )
    assert settings.mode == "prod"
    assert settings.jwt_secret.get_secret_value() != DEV_JWT_SECRET
