"""`clonegate keys generate | check | rewrap-voices`: every key prod needs, made and checked here.

`generate` writes new random keys into a folder, private files 0600, and never replaces a file
that exists (a replaced voice-storage key would make every stored voice unreadable); it also
writes `clonegate-keys.env` naming each file in its setting. `check` reads the configured keys
with the gateway's own readers (gateway/keyfiles.py), so a set that passes is a set the gateway
starts with. `rewrap-voices` moves every voice's data key from an old voice-storage key to the
configured one (docs/operations.md, "Rotating keys").
"""

from __future__ import annotations

import argparse
import datetime as dt
import secrets
import sys
from collections.abc import Callable
from pathlib import Path

from gateway.keyfiles import (
    AUDIT_SIGNING_KEY_SETTING,
    C2PA_CHAIN_SETTING,
    C2PA_KEY_SETTING,
    VOICE_STORAGE_KEY_BYTES,
    VOICE_STORAGE_KEY_SETTING,
    WATERMARK_KEY_SETTING,
    permission_problem,
    private_key_files,
    write_private_file,
)
from gateway.settings import Settings, SettingsError

KINDS = ("audit", "watermark", "voice-storage", "c2pa-test-chain")
DEFAULT_KINDS = ("audit", "watermark", "voice-storage")
ENV_FILE = "clonegate-keys.env"
PUBLIC = 0o644


def register_keys_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keys = commands.add_parser("keys", help="generate and check the keys prod needs")
    sub = keys.add_subparsers(dest="keys_command", required=True)

    generate = sub.add_parser("generate", help="write new random keys into a folder (never replaces a file)")
    generate.add_argument("folder", type=Path, help="where the key files go (created 0700 if missing)")
    generate.add_argument(
        "--only",
        action="append",
        choices=KINDS,
        help=f"generate only this kind (repeatable); default: {', '.join(DEFAULT_KINDS)}",
    )
    generate.add_argument(
        "--audit-origin",
        help="the audit log's origin, the name on every checkpoint, e.g. voice.example.com/audit "
        "(required with the audit key)",
    )
    generate.add_argument(
        "--c2pa-test-chain",
        action="store_true",
        help="also make a local test CA and a C2PA signing leaf, for staging (readers will not trust it)",
    )
    generate.add_argument("--c2pa-organization", default="clonegate staging", help="organisation named in the test CA")
    generate.add_argument("--c2pa-days", type=int, default=90, help="validity of the test leaf and CA, in days")
    generate.set_defaults(run=_generate, needs_settings=False)

    check = sub.add_parser("check", help="read the configured keys as the gateway will; exit 1 on any problem")
    check.set_defaults(run=_check)

    rewrap = sub.add_parser(
        "rewrap-voices", help="re-wrap every voice's data key from an old voice-storage key to the configured one"
    )
    rewrap.add_argument("--old-key", type=Path, required=True, help="the voice-storage key file in use until now")
    rewrap.set_defaults(run=_rewrap)


# generate


def _kinds(args: argparse.Namespace) -> list[str]:
    kinds = list(args.only) if args.only else list(DEFAULT_KINDS)
    if args.c2pa_test_chain and "c2pa-test-chain" not in kinds:
        kinds.append("c2pa-test-chain")
    return kinds


def _generate(args: argparse.Namespace, _: Settings | None) -> int:
    from audit.checkpoint import SigningKey
    from audit.errors import SigningKeyError
    from gateway.synthesis.provenance import generate_dev_chain

    kinds = _kinds(args)
    folder: Path = args.folder.resolve()
    if "audit" in kinds and not args.audit_origin:
        print("clonegate keys generate: --audit-origin is required with the audit key", file=sys.stderr)
        return 2
    if not 1 <= args.c2pa_days <= 825:
        print("clonegate keys generate: --c2pa-days must be in 1..825", file=sys.stderr)
        return 2
    files: dict[str, tuple[bytes, int]] = {}  # name -> (content, mode)
    settings: dict[str, str] = {}
    notes: list[str] = []
    if "audit" in kinds:
        try:
            key = SigningKey.generate(name=args.audit_origin)
        except SigningKeyError as exc:
            print(f"clonegate keys generate: --audit-origin: {exc}", file=sys.stderr)
            return 2
        files["audit-signing.key"] = ((key.encode() + "\n").encode(), 0o600)
        files["audit-verifier.pub"] = ((key.verifier.encode() + "\n").encode(), PUBLIC)
        settings[AUDIT_SIGNING_KEY_SETTING] = "audit-signing.key"
        notes.append(f"audit verifier key (publish it): {key.verifier.encode()}")
    if "watermark" in kinds:
        files["watermark.key"] = (secrets.token_bytes(32), 0o600)
        settings[WATERMARK_KEY_SETTING] = "watermark.key"
    if "voice-storage" in kinds:
        files["voice-storage.key"] = (secrets.token_bytes(VOICE_STORAGE_KEY_BYTES), 0o600)
        settings[VOICE_STORAGE_KEY_SETTING] = "voice-storage.key"
    if "c2pa-test-chain" in kinds:
        chain = generate_dev_chain(valid_for=dt.timedelta(days=args.c2pa_days), organization=args.c2pa_organization)
        files["c2pa-chain.pem"] = (chain.chain_pem, PUBLIC)
        files["c2pa-test-ca.pem"] = (chain.ca_pem, PUBLIC)
        files["c2pa-signing.key"] = (chain.key_pem, 0o600)
        settings[C2PA_CHAIN_SETTING] = "c2pa-chain.pem"
        settings[C2PA_KEY_SETTING] = "c2pa-signing.key"
        notes.append("C2PA: a test CA for staging; its key was not kept, and readers trust it only as a trust anchor")
    env = "".join(f"{setting}={folder / name}\n" for setting, name in settings.items())
    files[ENV_FILE] = (env.encode(), PUBLIC)

    existing = [name for name in files if (folder / name).exists()]
    if existing:
        print(
            f"clonegate keys generate: {', '.join(str(folder / name) for name in existing)} exist(s); keys are never "
            "replaced: generate into a new folder (rotation: docs/operations.md)",
            file=sys.stderr,
        )
        return 2
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    for name, (content, mode) in files.items():
        write_private_file(folder / name, content, mode=mode)
        print(f"wrote {folder / name} ({mode:04o})")
    for note in notes:
        print(note)
    print(f"settings: {folder / ENV_FILE}  (e.g. `set -a; . {folder / ENV_FILE}; set +a`)")
    return 0


# check


def _check(_: argparse.Namespace, settings: Settings) -> int:
    from gateway import keyfiles
    from gateway.auth import TokenVerifier
    from gateway.components import build_manifest_signer

    problems = 0

    def report(setting: str, read: Callable[[], str]) -> None:
        nonlocal problems
        try:
            print(f"ok    {setting}: {read()}")
        except SettingsError as exc:
            problems += 1
            print(f"FAIL  {setting}: {str(exc).removeprefix(setting + ': ')}")

    def audit() -> str:
        key = keyfiles.audit_signing_key(settings)
        return f"Ed25519, origin {key.name}, verifier {key.verifier.encode()}"

    def watermark() -> str:
        key = keyfiles.watermark_key(settings)
        return _dev_fallback(settings) if key is None else f"{len(key)} bytes"

    def voice_storage() -> str:
        if settings.voice_storage_key_file is None:
            keyfiles.voice_storage_key(settings)  # refuses in prod
            return _dev_fallback(settings)
        keyfiles.voice_storage_key(settings)
        return f"{VOICE_STORAGE_KEY_BYTES} bytes"

    def c2pa() -> str:
        if keyfiles.c2pa_credentials(settings) is None:
            return "none set: dev mode signs with a throwaway CA made at each start"
        signer = build_manifest_signer(settings)  # the same checks, and a probe signature, as start-up
        return f"signs; leaf valid until {signer.not_valid_after:%Y-%m-%d}"

    def identity_provider() -> str:
        verifier = TokenVerifier(settings)
        if verifier.key_set is None:
            return f"HS256 only ({settings.mode} mode)"
        status = verifier.key_set.status()
        if not status.up:
            raise SettingsError(f"cannot read the key set from {status.source}: {status.last_error}")
        return f"{status.keys} signing key(s) from {status.source}"

    report(AUDIT_SIGNING_KEY_SETTING, audit)
    report(WATERMARK_KEY_SETTING, watermark)
    report(VOICE_STORAGE_KEY_SETTING, voice_storage)
    report(C2PA_CHAIN_SETTING, c2pa)
    report("CLONEGATE_JWT_JWKS_FILE / _URL", identity_provider)
    for setting, path in private_key_files(settings).items():
        problem = permission_problem(path)
        if problem is not None:
            problems += 1
            print(f"FAIL  {setting}: {problem}")
    secrets_read = [path for path in private_key_files(settings).values() if path.is_file()]
    contents = [path.read_bytes() for path in secrets_read]
    if len(set(contents)) != len(contents):
        problems += 1
        print("FAIL  two key settings name the same key; each key must be its own")
    print("keys: all usable" if not problems else f"keys: {problems} problem(s)")
    return 0 if not problems else 1


def _dev_fallback(settings: Settings) -> str:
    if not settings.is_dev:  # settings refuse an unset key file in prod; kept as a guard
        raise SettingsError("no key file is set")
    return "none set: dev mode uses the public built-in key"


# rewrap-voices


def _rewrap(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.db import create_db_engine, make_session_factory
    from gateway.keyfiles import read_setting_file, voice_storage_key
    from policy.consent.storage import rewrap_voice_keys
    from policy.errors import PolicyError

    new_key = voice_storage_key(settings)
    old_key = read_setting_file("--old-key", args.old_key)
    if old_key == new_key:
        print("clonegate keys rewrap-voices: the old key is the configured key; nothing to do", file=sys.stderr)
        return 2
    engine = create_db_engine(settings.resolved_database_url)
    try:
        with make_session_factory(engine)() as session:
            count = rewrap_voice_keys(session, old_key_encryption_key=old_key, new_key_encryption_key=new_key)
            session.commit()
    except PolicyError as exc:
        print(f"clonegate keys rewrap-voices: {exc}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    print(f"re-wrapped the data keys of {count} voice(s) under {settings.voice_storage_key_file}")
    return 0
