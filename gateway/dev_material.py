"""The built-in development keys and secrets, and the one rule that recognises them.

Dev mode runs on keys that are in this source tree, so anyone can read them: a voice sealed, a
mark embedded or a checkpoint signed with one of them proves nothing. Prod refuses every one of
them, wherever it is configured: each key reader (`gateway/keyfiles.py`) and the settings pass
what they loaded to `dev_material_in`, which compares SHA-256 fingerprints of the material (and of
the encodings an operator might have written it in) with the table below.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
from dataclasses import dataclass

from watermark import DEV_KEY as DEV_WATERMARK_KEY

DEV_JWT_SECRET = "clonegate-dev-jwt-secret-do-not-use-in-production"
DEV_VOICE_STORAGE_KEY = hashlib.sha256(b"clonegate public development voice-storage key").digest()
# Dev mode generates its audit signing key at random, once per data folder, under this origin:
# the key itself is not in the source, its name is, and the name is what a checkpoint shows.
DEV_AUDIT_KEY_NAME = "clonegate-dev.invalid/audit"
# The organisation of the throwaway C2PA CA that dev mode (and the test suite) makes.
DEV_C2PA_ORGANIZATION = "clonegate development"


def fingerprint(material: bytes) -> str:
    return hashlib.sha256(material).hexdigest()


@dataclass(frozen=True)
class DevMaterial:
    """One built-in dev key or secret: what it is, and the fingerprint that identifies it."""

    what: str
    fingerprint: str


DEV_MATERIAL: tuple[DevMaterial, ...] = (
    DevMaterial("the built-in dev JWT secret", fingerprint(DEV_JWT_SECRET.encode())),
    DevMaterial("the built-in dev watermark key", fingerprint(DEV_WATERMARK_KEY)),
    DevMaterial("the built-in dev voice-storage key", fingerprint(DEV_VOICE_STORAGE_KEY)),
    DevMaterial(f"a dev audit key (origin {DEV_AUDIT_KEY_NAME})", fingerprint(DEV_AUDIT_KEY_NAME.encode())),
    DevMaterial(f"the throwaway dev C2PA CA ({DEV_C2PA_ORGANIZATION})", fingerprint(DEV_C2PA_ORGANIZATION.encode())),
)
_BY_FINGERPRINT = {entry.fingerprint: entry for entry in DEV_MATERIAL}


def _readings(material: bytes) -> list[bytes]:
    """The material as given, trimmed, and decoded from hex or base64: a dev key written with a
    trailing newline or in text form is still the public dev key."""
    readings = [material, material.strip()]
    text = material.strip()
    with contextlib.suppress(UnicodeDecodeError, ValueError):
        readings.append(bytes.fromhex(text.decode("ascii")))
    for decode in (base64.b64decode, base64.urlsafe_b64decode):
        with contextlib.suppress(binascii.Error, ValueError):
            readings.append(decode(text + b"=" * (-len(text) % 4)))
    return readings


def dev_material_in(material: bytes) -> DevMaterial | None:
    """The table entry `material` is (in any reading above), or None."""
    for reading in _readings(material):
        found = _BY_FINGERPRINT.get(fingerprint(reading))
        if found is not None:
            return found
    return None
