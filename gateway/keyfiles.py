"""Reading the gateway's key files, each error naming the setting that holds the key.

One reader per key; every reader passes what it read to the dev-material rule
(`gateway/dev_material.py`), so a built-in dev key is refused in prod whichever setting it was
put in. `clonegate keys generate` writes these files and `clonegate keys check` reads them with
the same readers, so a set that passes the check is a set the gateway starts with.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import NameOID

from audit.checkpoint import SigningKey
from audit.errors import SigningKeyError
from gateway.dev_material import DEV_AUDIT_KEY_NAME, DEV_VOICE_STORAGE_KEY, dev_material_in
from gateway.settings import Settings, SettingsError

log = logging.getLogger("clonegate.keys")

AUDIT_SIGNING_KEY_SETTING = "CLONEGATE_AUDIT_SIGNING_KEY_FILE"
WATERMARK_KEY_SETTING = "CLONEGATE_WATERMARK_KEY_FILE"
VOICE_STORAGE_KEY_SETTING = "CLONEGATE_VOICE_STORAGE_KEY_FILE"
C2PA_CHAIN_SETTING = "CLONEGATE_C2PA_CERTIFICATE_CHAIN_FILE"
C2PA_KEY_SETTING = "CLONEGATE_C2PA_SIGNING_KEY_FILE"

# Dev mode's audit key: generated once into the data folder (never used in prod).
DEV_AUDIT_KEY_FILE = "audit-dev-signing.key"
VOICE_STORAGE_KEY_BYTES = 32
WATERMARK_KEY_MIN_BYTES = 16


def read_setting_file(setting: str, path: Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise SettingsError(f"{setting}: cannot read {path}: {exc.strerror or exc}") from exc


def refuse_dev_material(settings: Settings, *, setting: str, material: bytes) -> None:
    """Outside dev mode, refuse `material` if it is one of the built-in dev keys or secrets."""
    if settings.is_dev:
        return
    found = dev_material_in(material)
    if found is not None:
        raise SettingsError(f"{setting}: {found.what} is refused in prod; make a key with `clonegate keys generate`")


def permission_problem(path: Path) -> str | None:
    """Why a private key file is too open (group or others may read it), or None."""
    try:
        mode = Path(path).stat().st_mode
    except OSError:
        return None  # the reader reports the missing file
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        return f"{path} is readable by group or others (mode {stat.S_IMODE(mode):04o}); chmod 600 it"
    return None


def audit_signing_key(settings: Settings) -> SigningKey:
    """The checkpoint signing key file named in settings; in dev mode only, a key generated once
    into the data folder when none is configured."""
    path = settings.audit_signing_key_file
    if path is None:
        if not settings.is_dev:
            raise SettingsError(f"{AUDIT_SIGNING_KEY_SETTING} must name a key file in prod")
        path = settings.data_dir / DEV_AUDIT_KEY_FILE
        if not path.exists():
            write_private_file(path, (SigningKey.generate(name=DEV_AUDIT_KEY_NAME).encode() + "\n").encode())
    text = read_setting_file(AUDIT_SIGNING_KEY_SETTING, path)
    try:
        key = SigningKey.parse(text.decode("utf-8"))
    except (UnicodeDecodeError, SigningKeyError) as exc:
        raise SettingsError(f"{AUDIT_SIGNING_KEY_SETTING} {path}: {exc}") from exc
    refuse_dev_material(settings, setting=AUDIT_SIGNING_KEY_SETTING, material=key.name.encode())
    return key


def watermark_key(settings: Settings) -> bytes | None:
    """The keyed watermark's secret (raw bytes, used whole); None when unset (dev falls back to
    the watermark package's public key; prod settings refuse an unset file)."""
    path = settings.watermark_key_file
    if path is None:
        return None
    key = read_setting_file(WATERMARK_KEY_SETTING, path)
    if len(key) < WATERMARK_KEY_MIN_BYTES:
        raise SettingsError(
            f"{WATERMARK_KEY_SETTING}: the key in {path} has {len(key)} bytes; at least {WATERMARK_KEY_MIN_BYTES} "
            "are needed (`clonegate keys generate` writes 32)"
        )
    refuse_dev_material(settings, setting=WATERMARK_KEY_SETTING, material=key)
    return key


def voice_storage_key(settings: Settings) -> bytes:
    """The key-encryption key that wraps every voice's data key (32 raw bytes)."""
    path = settings.voice_storage_key_file
    if path is None:
        if not settings.is_dev:
            raise SettingsError(f"{VOICE_STORAGE_KEY_SETTING} must name a key file in prod")
        return DEV_VOICE_STORAGE_KEY
    key = read_setting_file(VOICE_STORAGE_KEY_SETTING, path)
    if len(key) != VOICE_STORAGE_KEY_BYTES:
        raise SettingsError(
            f"{VOICE_STORAGE_KEY_SETTING}: the key in {path} has {len(key)} bytes; it must be "
            f"{VOICE_STORAGE_KEY_BYTES} raw bytes (`clonegate keys generate` writes one)"
        )
    refuse_dev_material(settings, setting=VOICE_STORAGE_KEY_SETTING, material=key)
    return key


def c2pa_credentials(settings: Settings) -> tuple[bytes, bytes] | None:
    """The configured C2PA chain and leaf key as PEM, or None when neither is set in dev mode
    (the caller then makes a throwaway CA). The chain is checked against the dev CA here; what
    c2pa needs of it is checked by `gateway.synthesis.provenance.ManifestSigner`."""
    chain_path, key_path = settings.c2pa_certificate_chain_file, settings.c2pa_signing_key_file
    if chain_path is None and key_path is None and settings.is_dev:
        return None
    # In dev, one file without the other is a mistake, not a reason to fall back to a dev CA.
    where = "in prod" if not settings.is_dev else "when the other C2PA file is set"
    if chain_path is None:
        raise SettingsError(f"{C2PA_CHAIN_SETTING} must name a certificate chain file {where}")
    if key_path is None:
        raise SettingsError(f"{C2PA_KEY_SETTING} must name a key file {where}")
    chain_pem = read_setting_file(C2PA_CHAIN_SETTING, chain_path)
    key_pem = read_setting_file(C2PA_KEY_SETTING, key_path)
    for organization in _organizations(chain_pem):
        refuse_dev_material(settings, setting=C2PA_CHAIN_SETTING, material=organization)
    return chain_pem, key_pem


def _organizations(chain_pem: bytes) -> list[bytes]:
    try:
        certificates = x509.load_pem_x509_certificates(chain_pem)
    except ValueError:
        return []  # not PEM: ManifestSigner refuses it with the reason
    names = []
    for certificate in certificates:
        for name in (certificate.subject, certificate.issuer):
            names += [str(a.value).encode() for a in name.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    return names


def private_key_files(settings: Settings) -> dict[str, Path]:
    """The configured private key files by setting name (what `clonegate keys check` inspects)."""
    files = {
        AUDIT_SIGNING_KEY_SETTING: settings.audit_signing_key_file,
        WATERMARK_KEY_SETTING: settings.watermark_key_file,
        VOICE_STORAGE_KEY_SETTING: settings.voice_storage_key_file,
        C2PA_KEY_SETTING: settings.c2pa_signing_key_file,
    }
    return {setting: Path(path) for setting, path in files.items() if path is not None}


def check_key_files(settings: Settings) -> None:
    """Read every configured key with its reader (the first problem raises, naming its setting).

    The app calls this before it loads any model, so a bad key stops start-up at once; a key
    file that others may read is logged, not refused (secret volumes are often mounted 0644).
    """
    audit_signing_key(settings)
    watermark_key(settings)
    voice_storage_key(settings)
    c2pa_credentials(settings)
    for setting, path in private_key_files(settings).items():
        problem = permission_problem(path)
        if problem is not None:
            log.warning("%s: %s", setting, problem)


def write_private_file(path: Path, content: bytes, *, mode: int = 0o600) -> None:
    """Create `path` with `mode` and write `content`; never replace an existing file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(content)
    os.chmod(path, mode)  # the umask may have taken bits away from a public file's mode
