"""Settings: dev defaults work with nothing configured; prod refuses every built-in secret."""

from __future__ import annotations

import pytest

from gateway.settings import Settings, SettingsError, load_settings


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
    with pytest.raises(SettingsError) as error:
        load_settings(
            mode="prod",
            data_dir=tmp_path,
            jwt_algorithms=["HS256", "RS256"],
            jwt_jwks_url="https://idp.example/jwks",
            jwt_issuer="https://idp.example",
        )
    assert "CLONEGATE_JWT_SECRET: the built-in dev JWT secret is refused in prod" in str(error.value)


def test_jwt_secret_is_not_asked_for_without_an_hs_algorithm(tmp_path):
    with pytest.raises(SettingsError) as error:  # refused for the missing key files only
        load_settings(
            mode="prod",
            data_dir=tmp_path,
            jwt_algorithms=["ES256", "RS256"],
            jwt_jwks_url="https://idp.example/jwks",
            jwt_issuer="https://idp.example",
        )
    assert "JWT_SECRET" not in str(error.value)
    assert "CLONEGATE_WATERMARK_KEY_FILE must name a key file in prod" in str(error.value)


@pytest.mark.parametrize("value", ["ES256", "ES256,RS256", " ES256 , RS256 ", '["ES256", "RS256"]'])
def test_list_settings_take_the_plain_form_or_json(monkeypatch, tmp_path, value):
    monkeypatch.setenv("CLONEGATE_JWT_ALGORITHMS", value)
    monkeypatch.setenv("CLONEGATE_WATERMARK_SCHEMES", "keyed")
    monkeypatch.setenv("CLONEGATE_IDENTITY_ASSURANCE_VALUES", "verified-id,eidas-high")
    settings = load_settings(data_dir=tmp_path)
    assert settings.jwt_algorithms == [item.strip() for item in value.strip("[]").replace('"', "").split(",")]
    assert settings.watermark_schemes == ["keyed"]
    assert settings.identity_assurance_values == ["verified-id", "eidas-high"]


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("CLONEGATE_JWT_ALGORITHMS", '["ES256"', "CLONEGATE_JWT_ALGORITHMS: not a JSON list"),
        ("CLONEGATE_JWT_ALGORITHMS", "ES512", "CLONEGATE_JWT_ALGORITHMS: Input should be 'HS256', 'RS256' or 'ES256'"),
        ("CLONEGATE_JWT_ALGORITHMS", ",", "CLONEGATE_JWT_ALGORITHMS names no algorithm"),
        ("CLONEGATE_WATERMARK_SCHEMES", "keyed,nothing", "CLONEGATE_WATERMARK_SCHEMES: Input should be"),
        ("CLONEGATE_SYNTHESIS_DENY_PATTERNS", "a{1,3}", "CLONEGATE_SYNTHESIS_DENY_PATTERNS: must be a JSON list"),
        ("CLONEGATE_PORT", "eighty", "CLONEGATE_PORT: Input should be a valid integer"),
    ],
)
def test_unusable_setting_answers_one_line_naming_it(monkeypatch, tmp_path, variable, value, expected):
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as error:
        load_settings(data_dir=tmp_path)
    assert expected in str(error.value)
    assert "\n" not in str(error.value)


def test_deny_patterns_keep_their_commas(monkeypatch, tmp_path):
    monkeypatch.setenv("CLONEGATE_SYNTHESIS_DENY_PATTERNS", '["a{1,3}b", "c"]')
    assert load_settings(data_dir=tmp_path).synthesis_deny_patterns == ["a{1,3}b", "c"]


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
        load_settings(mode="prod", data_dir=tmp_path, jwt_algorithms=["ES256"])
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
        jwt_jwks_url="https://idp.example/jwks",
        jwt_issuer="https://idp.example",
        c2pa_certificate_chain_file=tmp_path / "chain.pem",
        **key_files,
    )
    assert settings.mode == "prod"
    assert not settings.accepts_hs_tokens
