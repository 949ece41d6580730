"""Every built-in dev key and secret is public (it is in the source): prod refuses each one, in
the setting where an operator might put it, when the gateway starts and in `clonegate keys check`."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from audit.checkpoint import SigningKey
from gateway.app import create_app
from gateway.dependencies import gateway_of
from gateway.dev_material import (
    DEV_AUDIT_KEY_NAME,
    DEV_C2PA_ORGANIZATION,
    DEV_JWT_SECRET,
    DEV_MATERIAL,
    DEV_VOICE_STORAGE_KEY,
    DEV_WATERMARK_KEY,
)
from gateway.settings import SettingsError, load_settings
from gateway.synthesis.provenance import generate_dev_chain
from tests.gateway.prod_setup import ProdSetup, make_prod_setup


@pytest.fixture
def prod(tmp_path) -> ProdSetup:
    return make_prod_setup(tmp_path, database_url=f"sqlite:///{tmp_path / 'prod.db'}")


def _replace(prod: ProdSetup, setting: str, content: bytes) -> None:
    path = prod.folder / f"dev-{setting.lower()}"
    path.write_bytes(content)
    path.chmod(0o600)
    prod.env[setting] = str(path)


def _put_dev_audit_key(prod: ProdSetup) -> str:
    # What dev mode writes into its data folder (gateway/keyfiles.py), copied into a prod config.
    _replace(prod, "CLONEGATE_AUDIT_SIGNING_KEY_FILE", SigningKey.generate(name=DEV_AUDIT_KEY_NAME).encode().encode())
    return "CLONEGATE_AUDIT_SIGNING_KEY_FILE"


def _put_dev_watermark_key(prod: ProdSetup) -> str:
    _replace(prod, "CLONEGATE_WATERMARK_KEY_FILE", DEV_WATERMARK_KEY)
    return "CLONEGATE_WATERMARK_KEY_FILE"


def _put_dev_voice_storage_key(prod: ProdSetup) -> str:
    _replace(prod, "CLONEGATE_VOICE_STORAGE_KEY_FILE", DEV_VOICE_STORAGE_KEY)
    return "CLONEGATE_VOICE_STORAGE_KEY_FILE"


def _put_dev_c2pa_chain(prod: ProdSetup) -> str:
    chain = generate_dev_chain()  # the throwaway CA of dev mode and of the test suite
    _replace(prod, "CLONEGATE_C2PA_CERTIFICATE_CHAIN_FILE", chain.chain_pem)
    _replace(prod, "CLONEGATE_C2PA_SIGNING_KEY_FILE", chain.key_pem)
    return "CLONEGATE_C2PA_CERTIFICATE_CHAIN_FILE"


def _put_dev_jwt_secret(prod: ProdSetup) -> str:
    prod.env |= {"CLONEGATE_JWT_ALGORITHMS": "HS256,ES256", "CLONEGATE_JWT_SECRET": DEV_JWT_SECRET}
    return "CLONEGATE_JWT_SECRET"


PLANTERS = {
    "the built-in dev JWT secret": _put_dev_jwt_secret,
    "the built-in dev watermark key": _put_dev_watermark_key,
    "the built-in dev voice-storage key": _put_dev_voice_storage_key,
    f"a dev audit key (origin {DEV_AUDIT_KEY_NAME})": _put_dev_audit_key,
    f"the throwaway dev C2PA CA ({DEV_C2PA_ORGANIZATION})": _put_dev_c2pa_chain,
}


def test_every_dev_material_entry_has_a_refusal_test():
    assert {entry.what for entry in DEV_MATERIAL} == set(PLANTERS)


@pytest.mark.parametrize("what", sorted(PLANTERS))
def test_prod_start_refuses_dev_material(prod, loaded_models, what):
    setting = PLANTERS[what](prod)
    with pytest.raises(SettingsError) as error:
        create_app(prod.settings(), models=loaded_models)
    assert f"{setting}: {what} is refused in prod" in str(error.value)


@pytest.mark.parametrize(
    "encode", [lambda key: key + b"\n", lambda key: key.hex().encode() + b"\n"], ids=["newline", "hex"]
)
def test_prod_refuses_the_dev_watermark_key_in_another_spelling(prod, loaded_models, encode):
    _replace(prod, "CLONEGATE_WATERMARK_KEY_FILE", encode(DEV_WATERMARK_KEY))
    with pytest.raises(SettingsError, match="CLONEGATE_WATERMARK_KEY_FILE: the built-in dev watermark key"):
        create_app(prod.settings(), models=loaded_models)


def test_prod_refuses_a_dev_key_in_the_wrong_setting(prod, loaded_models):
    _replace(prod, "CLONEGATE_WATERMARK_KEY_FILE", DEV_VOICE_STORAGE_KEY)
    with pytest.raises(SettingsError, match="CLONEGATE_WATERMARK_KEY_FILE: the built-in dev voice-storage key"):
        create_app(prod.settings(), models=loaded_models)


def test_keys_check_refuses_the_dev_voice_storage_key_file(prod):
    # The reported case: the SHA-256 constant of gateway/components.py written to the key file.
    _put_dev_voice_storage_key(prod)
    result = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "keys", "check"],
        env={**os.environ, **prod.env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert (
        "FAIL  CLONEGATE_VOICE_STORAGE_KEY_FILE: the built-in dev voice-storage key is refused in prod" in result.stdout
    )
    assert "ok    CLONEGATE_WATERMARK_KEY_FILE" in result.stdout


def test_dev_mode_still_runs_on_its_built_in_keys(tmp_path, loaded_models):
    settings = load_settings(data_dir=tmp_path / "data", voice_storage_key_file=None)
    app = create_app(settings, models=loaded_models)
    assert gateway_of(app).components.voices.key_encryption_key == DEV_VOICE_STORAGE_KEY
