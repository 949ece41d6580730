"""`clonegate keys`: every key prod needs from one command, private files 0600, never replaced;
`keys check` reads them as the gateway will; `keys rewrap-voices` rotates the voice-storage key."""

from __future__ import annotations

import os
import secrets
import stat
import subprocess
import sys

import numpy as np
import pytest

from audit.checkpoint import SigningKey, VerifierKey, open_note
from gateway.cli import main as clonegate
from gateway.db import create_db_engine, make_session_factory
from gateway.synthesis.provenance import ManifestSigner
from policy.consent.models import Voice
from policy.consent.storage import check_key_encryption_key, create_voice_key, load_samples, store_sample
from policy.errors import VoiceKeyUnwrapFailed
from tests.gateway.prod_setup import make_prod_setup

PRIVATE = ("audit-signing.key", "watermark.key", "voice-storage.key", "c2pa-signing.key")
PUBLIC = ("audit-verifier.pub", "c2pa-chain.pem", "c2pa-test-ca.pem", "clonegate-keys.env")


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_generate_writes_every_key_private_and_names_each_setting(tmp_path, capsys):
    folder = tmp_path / "keys"
    assert (
        clonegate(["keys", "generate", str(folder), "--audit-origin", "voice.example/audit", "--c2pa-test-chain"]) == 0
    )
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert sorted(path.name for path in folder.iterdir()) == sorted(PRIVATE + PUBLIC)
    for name in PRIVATE:
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o600, name
    for name in PUBLIC:
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o644, name
    env = dict(line.split("=", 1) for line in (folder / "clonegate-keys.env").read_text().splitlines())
    assert env == {
        "CLONEGATE_AUDIT_SIGNING_KEY_FILE": str(folder / "audit-signing.key"),
        "CLONEGATE_WATERMARK_KEY_FILE": str(folder / "watermark.key"),
        "CLONEGATE_VOICE_STORAGE_KEY_FILE": str(folder / "voice-storage.key"),
        "CLONEGATE_C2PA_CERTIFICATE_CHAIN_FILE": str(folder / "c2pa-chain.pem"),
        "CLONEGATE_C2PA_SIGNING_KEY_FILE": str(folder / "c2pa-signing.key"),
    }
    assert len((folder / "watermark.key").read_bytes()) == 32
    assert len((folder / "voice-storage.key").read_bytes()) == 32
    assert (folder / "watermark.key").read_bytes() != (folder / "voice-storage.key").read_bytes()
    assert "audit verifier key (publish it): voice.example/audit+" in capsys.readouterr().out


def test_audit_key_is_a_signed_note_key_its_verifier_checks(tmp_path):
    folder = tmp_path / "keys"
    assert clonegate(["keys", "generate", str(folder), "--audit-origin", "voice.example/audit", "--only", "audit"]) == 0
    key = SigningKey.parse((folder / "audit-signing.key").read_text())
    verifier = VerifierKey.parse((folder / "audit-verifier.pub").read_text())
    assert key.name == verifier.name == "voice.example/audit"
    assert (
        (folder / "audit-signing.key")
        .read_text()
        .startswith(f"PRIVATE+KEY+voice.example/audit+{verifier.key_id.hex()}+")
    )
    note = key.sign_note("voice.example/audit\n1\nAAAA\n")
    assert open_note(note, verifier=verifier) == "voice.example/audit\n1\nAAAA\n"


def test_test_chain_signs_c2pa_manifests(tmp_path):
    folder = tmp_path / "keys"
    assert (
        clonegate(["keys", "generate", str(folder), "--only", "c2pa-test-chain", "--c2pa-organization", "Staging"]) == 0
    )
    signer = ManifestSigner(
        certificate_chain_pem=(folder / "c2pa-chain.pem").read_bytes(),
        private_key_pem=(folder / "c2pa-signing.key").read_bytes(),
    )
    assert signer.trust_anchor_pem == (folder / "c2pa-test-ca.pem").read_bytes()


def test_generate_never_replaces_a_key(tmp_path, capsys):
    folder = tmp_path / "keys"
    assert clonegate(["keys", "generate", str(folder), "--only", "voice-storage"]) == 0
    before = (folder / "voice-storage.key").read_bytes()
    assert clonegate(["keys", "generate", str(folder), "--only", "voice-storage"]) == 2
    assert "keys are never replaced" in capsys.readouterr().err
    assert (folder / "voice-storage.key").read_bytes() == before


def test_generate_asks_for_the_audit_origin(tmp_path, capsys):
    assert clonegate(["keys", "generate", str(tmp_path / "keys")]) == 2
    assert "--audit-origin is required" in capsys.readouterr().err
    assert not (tmp_path / "keys").exists()


def test_generate_runs_with_prod_mode_set_and_nothing_else(tmp_path):
    # The operator exports CLONEGATE_MODE=prod first: the command that makes the keys must still run.
    result = _run(
        ["keys", "generate", str(tmp_path / "keys"), "--audit-origin", "a.example/audit"], {"CLONEGATE_MODE": "prod"}
    )
    assert result.returncode == 0, result.stderr


def test_keys_check_passes_a_generated_prod_set(tmp_path):
    prod = make_prod_setup(tmp_path, database_url=f"sqlite:///{tmp_path / 'prod.db'}")
    result = _run(["keys", "check"], prod.env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("\nok    ") + result.stdout.startswith("ok    ") == 5
    assert "1 signing key(s) from file" in result.stdout
    assert result.stdout.rstrip().endswith("keys: all usable")


def test_keys_check_fails_a_key_others_can_read(tmp_path):
    prod = make_prod_setup(tmp_path, database_url=f"sqlite:///{tmp_path / 'prod.db'}")
    (prod.folder / "watermark.key").chmod(0o644)
    result = _run(["keys", "check"], prod.env)
    assert result.returncode == 1
    assert "FAIL  CLONEGATE_WATERMARK_KEY_FILE:" in result.stdout
    assert "readable by group or others (mode 0644); chmod 600 it" in result.stdout


def test_keys_check_names_the_setting_of_a_short_watermark_key(tmp_path):
    prod = make_prod_setup(tmp_path, database_url=f"sqlite:///{tmp_path / 'prod.db'}")
    short = prod.folder / "short.key"
    short.write_bytes(b"0123456789")
    short.chmod(0o600)
    result = _run(["keys", "check"], {**prod.env, "CLONEGATE_WATERMARK_KEY_FILE": str(short)})
    assert result.returncode == 1
    assert "FAIL  CLONEGATE_WATERMARK_KEY_FILE: the key in" in result.stdout
    assert "has 10 bytes; at least 16" in result.stdout


def test_keys_check_fails_the_same_key_in_two_settings(tmp_path):
    prod = make_prod_setup(tmp_path, database_url=f"sqlite:///{tmp_path / 'prod.db'}")
    same = {"CLONEGATE_WATERMARK_KEY_FILE": prod.env["CLONEGATE_VOICE_STORAGE_KEY_FILE"]}
    result = _run(["keys", "check"], {**prod.env, **same})
    assert result.returncode == 1
    assert "two key settings name the same key" in result.stdout


@pytest.fixture
def stored_voice(migrated_database_url):
    old_key = secrets.token_bytes(32)
    engine = create_db_engine(migrated_database_url)
    with make_session_factory(engine)() as session:
        session.add(
            Voice(id="a" * 32, owner_iss="https://idp", owner_sub="olive", owner_name="Olive", embedder_name="x")
        )
        session.flush()
        create_voice_key(session, voice_id="a" * 32, key_encryption_key=old_key)
        store_sample(
            session,
            voice_id="a" * 32,
            kind="reference",
            data=np.arange(8, dtype=np.float32),
            sample_rate=16_000,
            key_encryption_key=old_key,
        )
        session.commit()
    yield migrated_database_url, old_key, engine
    engine.dispose()


def test_rewrap_voices_moves_every_voice_to_the_new_key(tmp_path, stored_voice):
    url, old_key, engine = stored_voice
    old_file, new_folder = tmp_path / "old.key", tmp_path / "new"
    old_file.write_bytes(old_key)
    assert clonegate(["keys", "generate", str(new_folder), "--only", "voice-storage"]) == 0
    env = {"CLONEGATE_DATABASE_URL": url, "CLONEGATE_VOICE_STORAGE_KEY_FILE": str(new_folder / "voice-storage.key")}
    result = _run(["keys", "rewrap-voices", "--old-key", str(old_file)], env)
    assert result.returncode == 0, result.stderr
    assert "re-wrapped the data keys of 1 voice(s)" in result.stdout
    new_key = (new_folder / "voice-storage.key").read_bytes()
    with make_session_factory(engine)() as session:
        check_key_encryption_key(session, key_encryption_key=new_key)
        with pytest.raises(VoiceKeyUnwrapFailed):
            check_key_encryption_key(session, key_encryption_key=old_key)
        [(audio, rate)] = load_samples(session, voice_id="a" * 32, kind="reference", key_encryption_key=new_key)
    assert rate == 16_000 and audio.tolist() == list(range(8))
    again = _run(["keys", "rewrap-voices", "--old-key", str(old_file)], env)
    assert again.returncode == 0 and "of 0 voice(s)" in again.stdout


def test_rewrap_voices_refuses_a_wrong_old_key_and_changes_nothing(tmp_path, stored_voice):
    url, old_key, engine = stored_voice
    wrong, new_folder = tmp_path / "wrong.key", tmp_path / "new"
    wrong.write_bytes(secrets.token_bytes(32))
    assert clonegate(["keys", "generate", str(new_folder), "--only", "voice-storage"]) == 0
    env = {"CLONEGATE_DATABASE_URL": url, "CLONEGATE_VOICE_STORAGE_KEY_FILE": str(new_folder / "voice-storage.key")}
    result = _run(["keys", "rewrap-voices", "--old-key", str(wrong)], env)
    assert result.returncode == 1
    assert "does not open with the configured key-encryption key" in result.stderr
    with make_session_factory(engine)() as session:
        check_key_encryption_key(session, key_encryption_key=old_key)
