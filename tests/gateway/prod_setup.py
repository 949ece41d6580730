"""A prod configuration made the way docs/operations.md makes one: every key from
`clonegate keys generate`, an identity provider's signing key published as a JWKS file."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import jwt
from cryptography.hazmat.primitives.asymmetric import ec

from gateway.cli import main as clonegate
from gateway.settings import Settings, load_settings

ISSUER = "https://idp.example.test"
AUDIENCE = "clonegate"
AUDIT_ORIGIN = "voice.example.test/audit"


@dataclass
class ProdSetup:
    folder: Path
    env: dict[str, str]  # CLONEGATE_* variables, as an operator would export them
    signing_key: ec.EllipticCurvePrivateKey
    kid: str = "idp-1"

    def settings(self, **overrides: object) -> Settings:
        fields = {name.removeprefix("CLONEGATE_").lower(): value for name, value in self.env.items()}
        return load_settings(**{**fields, **overrides})

    def token(self, **claims: object) -> str:
        now = int(time.time())
        body = {"iss": ISSUER, "aud": AUDIENCE, "sub": "olive", "iat": now, "exp": now + 600, "role": ["admin"]}
        body.update(claims)
        return jwt.encode(body, self.signing_key, algorithm="ES256", headers={"kid": self.kid})


def public_jwk(key: ec.EllipticCurvePrivateKey, kid: str) -> dict:
    return {**json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key())), "kid": kid, "alg": "ES256", "use": "sig"}


def make_prod_setup(folder: Path, *, database_url: str) -> ProdSetup:
    keys = folder / "keys"
    assert clonegate(["keys", "generate", str(keys), "--audit-origin", AUDIT_ORIGIN, "--c2pa-test-chain"]) == 0
    env = dict(line.split("=", 1) for line in (keys / "clonegate-keys.env").read_text().splitlines())
    signing_key = ec.generate_private_key(ec.SECP256R1())
    jwks = folder / "jwks.json"
    jwks.write_text(json.dumps({"keys": [public_jwk(signing_key, "idp-1")]}))
    env |= {
        "CLONEGATE_MODE": "prod",
        "CLONEGATE_DATA_DIR": str(folder / "data"),
        "CLONEGATE_DATABASE_URL": database_url,
        "CLONEGATE_JWT_ALGORITHMS": "ES256",
        "CLONEGATE_JWT_JWKS_FILE": str(jwks),
        "CLONEGATE_JWT_ISSUER": ISSUER,
        "CLONEGATE_JWT_AUDIENCE": AUDIENCE,
        "CLONEGATE_PROVIDER_NAME": "Example Voice Ltd",
    }
    return ProdSetup(folder=keys, env=env, signing_key=signing_key)
