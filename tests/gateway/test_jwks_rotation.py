"""The identity provider rotates and revokes keys; the gateway follows without a restart.

The key set is served by a real HTTP server on loopback (or written to a real file) and the
tokens are signed with real EC keys: nothing here patches PyJWT or the gateway's fetcher.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from gateway.app import create_app
from gateway.settings import Settings
from tests.gateway.conftest import bearer
from tests.gateway.prod_setup import public_jwk

ISSUER = "https://idp.example.test"


class JwksServer:
    """An identity provider's JWKS endpoint whose key set, status and reachability the test sets."""

    def __init__(self) -> None:
        self.keys: dict[str, ec.EllipticCurvePrivateKey] = {}
        self.status = 200
        self.fetches = 0
        self.port = 0
        self._server: ThreadingHTTPServer | None = None

    def add(self, kid: str) -> ec.EllipticCurvePrivateKey:
        self.keys[kid] = ec.generate_private_key(ec.SECP256R1())
        return self.keys[kid]

    def document(self) -> bytes:
        return json.dumps({"keys": [public_jwk(key, kid) for kid, key in self.keys.items()]}).encode()

    def start(self) -> None:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.fetches += 1
                body = owner.document() if owner.status == 200 else b'{"error": "unavailable"}'
                self.send_response(owner.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_port
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        """Nobody listens on the port any more: connections are refused."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/.well-known/jwks.json"


@pytest.fixture
def idp() -> Iterator[JwksServer]:
    server = JwksServer()
    server.add("k1")
    server.start()
    yield server
    server.stop()


def token(key: ec.EllipticCurvePrivateKey, kid: str) -> str:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": "clonegate", "sub": "olive", "iat": now, "exp": now + 600, "role": ["owner"]}
    return jwt.encode(claims, key, algorithm="ES256", headers={"kid": kid})


def gateway(tmp_path, loaded_models, **jwt_settings) -> TestClient:
    settings = Settings(
        mode="dev",
        data_dir=tmp_path / "data",
        jwt_algorithms=["ES256"],
        jwt_issuer=ISSUER,
        **{f"jwt_{name}": value for name, value in jwt_settings.items()},
    )
    return TestClient(create_app(settings, models=loaded_models))


def me(client: TestClient, key, kid: str):
    return client.get("/v1/me", headers=bearer(token(key, kid)))


def not_ready(client: TestClient) -> list[str]:
    answer = client.get("/readyz")
    if answer.status_code == 200:
        return []
    return answer.json()["detail"].removeprefix("not ready: ").split(", ")


def sample(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def test_new_key_accepted_on_first_sight_of_its_kid(tmp_path, loaded_models, idp):
    with gateway(tmp_path, loaded_models, jwks_url=idp.url) as client:
        assert me(client, idp.keys["k1"], "k1").status_code == 200
        before = idp.fetches
        k2 = idp.add("k2")  # the provider rotates: a new key, published before tokens use it
        answer = me(client, k2, "k2")
        assert answer.status_code == 200, answer.text
        assert idp.fetches == before + 1


def test_flood_of_unknown_kids_costs_the_provider_one_request(tmp_path, loaded_models, idp):
    stranger = ec.generate_private_key(ec.SECP256R1())
    with gateway(tmp_path, loaded_models, jwks_url=idp.url) as client:
        before = idp.fetches
        codes = {me(client, stranger, uuid.uuid4().hex).json()["error"] for _ in range(40)}
        assert codes == {"token_unknown_key"}
        assert idp.fetches - before == 1  # one look-up per minimum interval (10 s by default)


def test_removed_key_refused_after_the_next_refresh(tmp_path, loaded_models, idp):
    # A compromised key is revoked by removing it from the set: no restart, no per-key cache.
    idp.add("k2")
    with gateway(
        tmp_path, loaded_models, jwks_url=idp.url, jwks_refresh_seconds=1, jwks_min_refresh_seconds=1
    ) as client:
        compromised = idp.keys["k1"]
        assert me(client, compromised, "k1").status_code == 200
        del idp.keys["k1"]
        time.sleep(1.1)
        answer = me(client, compromised, "k1")
        assert answer.status_code == 401
        assert answer.json()["error"] == "token_unknown_key"
        assert me(client, idp.keys["k2"], "k2").status_code == 200


def test_jwks_outage_answers_503_and_readyz_not_ready(tmp_path, loaded_models, idp, caplog):
    with gateway(
        tmp_path, loaded_models, jwks_url=idp.url, jwks_refresh_seconds=1, jwks_min_refresh_seconds=1
    ) as client:
        assert me(client, idp.keys["k1"], "k1").status_code == 200
        assert "identity_provider" not in not_ready(client)
        failures = sample("clonegate_jwks_refreshes_total", outcome="failed") or 0.0
        idp.stop()
        time.sleep(1.1)
        with caplog.at_level(logging.ERROR, logger="clonegate.auth"):
            answer = me(client, idp.keys["k1"], "k1")
        assert answer.status_code == 503
        assert answer.json()["error"] == "identity_provider_unavailable"
        assert answer.headers["retry-after"] == "1"
        # A token whose key cannot be fetched is not called forged either.
        stranger = ec.generate_private_key(ec.SECP256R1())
        assert me(client, stranger, "k9").json()["error"] == "identity_provider_unavailable"
        assert "identity_provider" in not_ready(client)
        assert any("cannot read the identity provider's keys" in r.getMessage() for r in caplog.records)
        assert sample("clonegate_jwks_up") == 0.0
        assert sample("clonegate_jwks_refreshes_total", outcome="failed") > failures
        idp.start()  # same port: the provider is back
        time.sleep(1.1)
        assert me(client, idp.keys["k1"], "k1").status_code == 200
        assert "identity_provider" not in not_ready(client)
        assert sample("clonegate_jwks_up") == 1.0


def test_jwks_error_status_is_an_outage(tmp_path, loaded_models, idp):
    idp.status = 500
    with gateway(tmp_path, loaded_models, jwks_url=idp.url) as client:
        assert me(client, idp.keys["k1"], "k1").json()["error"] == "identity_provider_unavailable"
        assert "identity_provider" in not_ready(client)


def test_outage_grace_keeps_the_last_keys_for_known_kids(tmp_path, loaded_models, idp):
    with gateway(
        tmp_path,
        loaded_models,
        jwks_url=idp.url,
        jwks_refresh_seconds=1,
        jwks_min_refresh_seconds=1,
        jwks_outage_grace_seconds=300,
    ) as client:
        idp.stop()
        time.sleep(1.1)
        assert me(client, idp.keys["k1"], "k1").status_code == 200
        assert "identity_provider" not in not_ready(client)
        stranger = ec.generate_private_key(ec.SECP256R1())
        assert me(client, stranger, "k9").json()["error"] == "token_unknown_key"


def test_unreachable_jwks_at_start_leaves_the_gateway_not_ready(tmp_path, loaded_models, idp):
    idp.stop()
    with gateway(
        tmp_path, loaded_models, jwks_url=idp.url, jwks_refresh_seconds=1, jwks_min_refresh_seconds=1
    ) as client:
        assert "identity_provider" in not_ready(client)
        assert me(client, idp.keys["k1"], "k1").status_code == 503
        idp.start()
        time.sleep(1.1)
        assert "identity_provider" not in not_ready(client)
        assert me(client, idp.keys["k1"], "k1").status_code == 200


def _publish(path, keys: dict[str, ec.EllipticCurvePrivateKey]) -> None:
    # Write and rename, as docs/operations.md says: a reader never sees half a file.
    partial = path.with_suffix(".tmp")
    partial.write_text(json.dumps({"keys": [public_jwk(key, kid) for kid, key in keys.items()]}))
    os.replace(partial, path)


def test_jwks_file_reloads_on_change(tmp_path, loaded_models):
    jwks = tmp_path / "jwks.json"
    k1, k2 = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    _publish(jwks, {"k1": k1})
    with gateway(tmp_path, loaded_models, jwks_file=jwks) as client:
        assert me(client, k2, "k2").json()["error"] == "token_unknown_key"
        _publish(jwks, {"k1": k1, "k2": k2})
        assert me(client, k2, "k2").status_code == 200
        _publish(jwks, {"k2": k2})
        assert me(client, k1, "k1").json()["error"] == "token_unknown_key"
        jwks.write_text("{not json")
        assert me(client, k2, "k2").json()["error"] == "identity_provider_unavailable"
        assert "identity_provider" in not_ready(client)
        _publish(jwks, {"k2": k2})
        assert me(client, k2, "k2").status_code == 200


def test_keys_for_encryption_or_symmetric_keys_are_never_used(tmp_path, loaded_models, idp):
    other = ec.generate_private_key(ec.SECP256R1())
    jwks = tmp_path / "jwks.json"
    jwks.write_text(
        json.dumps(
            {
                "keys": [
                    public_jwk(idp.keys["k1"], "k1"),
                    {**public_jwk(other, "enc-1"), "use": "enc"},
                    {"kty": "oct", "kid": "hs-1", "k": "c2VjcmV0"},
                ]
            }
        )
    )
    with gateway(tmp_path, loaded_models, jwks_file=jwks) as client:
        assert me(client, idp.keys["k1"], "k1").status_code == 200
        assert me(client, other, "enc-1").json()["error"] == "token_unknown_key"
