"""Each test is an attack on token authentication; each must be refused with 401/403."""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.server
import json
import threading

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi.testclient import TestClient

from gateway.app import create_app
from gateway.db import upgrade
from gateway.settings import Settings
from tests.gateway.conftest import bearer

ADMIN_ROUTE = "/v1/admin/settings"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _assert_refused(response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json() == {"error": code, "detail": response.json()["detail"]}
    assert response.json()["detail"]


@pytest.fixture
def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def jwks_settings(tmp_path, rsa_key) -> Settings:
    ec_key = ec.generate_private_key(ec.SECP256R1())
    keys = [
        {**json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(rsa_key.public_key())), "kid": "rsa-1", "alg": "RS256"},
        {**json.loads(jwt.algorithms.ECAlgorithm.to_jwk(ec_key.public_key())), "kid": "ec-1", "alg": "ES256"},
    ]
    jwks_file = tmp_path / "jwks.json"
    jwks_file.write_text(json.dumps({"keys": keys}))
    return Settings(mode="dev", data_dir=tmp_path / "data", jwt_algorithms=["RS256", "ES256"], jwt_jwks_file=jwks_file)


@pytest.fixture
def jwks_client(jwks_settings, loaded_models):
    upgrade(jwks_settings.resolved_database_url)
    with TestClient(create_app(jwks_settings, models=loaded_models)) as test_client:
        yield test_client


def test_accepts_valid_hs256_token(client, hs256_token):
    response = client.get("/v1/me", headers=bearer(hs256_token(name="Alice")))
    assert response.status_code == 200
    assert response.json()["subject"] == "alice"
    assert response.json()["roles"] == ["admin"]


def test_accepts_valid_rs256_token_selected_by_kid(jwks_client, claims, rsa_key):
    token = jwt.encode(claims(), rsa_key, algorithm="RS256", headers={"kid": "rsa-1"})
    assert jwks_client.get("/v1/me", headers=bearer(token)).status_code == 200


def test_rejects_missing_token(client):
    _assert_refused(client.get("/v1/me"), 401, "token_missing")


def test_rejects_malformed_token(client):
    _assert_refused(client.get("/v1/me", headers=bearer("not.a.jwt")), 401, "token_malformed")


def test_rejects_alg_none(client, claims):
    header = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    payload = _b64(json.dumps(claims()).encode())
    _assert_refused(client.get("/v1/me", headers=bearer(f"{header}.{payload}.")), 401, "token_algorithm_refused")


def _hs256_signed_with(key: bytes, claims: dict, kid: str) -> str:
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
    payload = _b64(json.dumps(claims).encode())
    signature = hmac.new(key, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64(signature)}"


def _public_pem(rsa_key) -> bytes:
    return rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def test_rejects_hs256_signed_with_rs256_public_key(jwks_client, claims, rsa_key):
    # Key confusion: the attacker uses the public RSA key as an HMAC secret.
    token = _hs256_signed_with(_public_pem(rsa_key), claims(), kid="rsa-1")
    _assert_refused(jwks_client.get("/v1/me", headers=bearer(token)), 401, "token_algorithm_refused")


def test_rejects_hs256_signed_with_public_key_when_hs256_also_accepted(
    tmp_path, claims, rsa_key, jwks_settings, loaded_models
):
    mixed = jwks_settings.model_copy(update={"jwt_algorithms": ["HS256", "RS256"]})
    upgrade(mixed.resolved_database_url)
    with TestClient(create_app(mixed, models=loaded_models)) as mixed_client:
        token = _hs256_signed_with(_public_pem(rsa_key), claims(), kid="rsa-1")
        _assert_refused(mixed_client.get("/v1/me", headers=bearer(token)), 401, "token_invalid_signature")


def test_rejects_rs256_header_on_ec_key(jwks_client, claims, rsa_key):
    token = jwt.encode(claims(), rsa_key, algorithm="RS256", headers={"kid": "ec-1"})
    _assert_refused(jwks_client.get("/v1/me", headers=bearer(token)), 401, "token_algorithm_refused")


def test_rejects_expired_token(client, hs256_token):
    expired = hs256_token(iat=1_000_000, nbf=1_000_000, exp=1_000_600)
    _assert_refused(client.get("/v1/me", headers=bearer(expired)), 401, "token_expired")


def test_rejects_token_not_yet_valid(client, hs256_token, claims):
    later = claims()["iat"] + 3600
    _assert_refused(
        client.get("/v1/me", headers=bearer(hs256_token(nbf=later, exp=later + 600))), 401, "token_not_yet_valid"
    )


def test_rejects_wrong_issuer(client, hs256_token):
    _assert_refused(
        client.get("/v1/me", headers=bearer(hs256_token(iss="https://evil.example"))), 401, "token_wrong_issuer"
    )


def test_rejects_wrong_audience(client, hs256_token):
    _assert_refused(
        client.get("/v1/me", headers=bearer(hs256_token(aud="another-service"))), 401, "token_wrong_audience"
    )


@pytest.mark.parametrize("claim", ["sub", "exp", "iat", "iss", "aud"])
def test_rejects_token_missing_required_claim(client, hs256_token, claim):
    _assert_refused(client.get("/v1/me", headers=bearer(hs256_token(**{claim: None}))), 401, "token_missing_claim")


def test_rejects_tampered_payload(client, hs256_token, claims):
    header, _, signature = hs256_token(role=["client"], tenant="acme").split(".")
    forged_payload = _b64(json.dumps(claims(role=["admin"])).encode())
    _assert_refused(
        client.get("/v1/me", headers=bearer(f"{header}.{forged_payload}.{signature}")), 401, "token_invalid_signature"
    )


def test_rejects_unknown_kid(jwks_client, claims):
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode(claims(), stranger, algorithm="RS256", headers={"kid": "rsa-2"})
    _assert_refused(jwks_client.get("/v1/me", headers=bearer(token)), 401, "token_unknown_key")


def test_rejects_kid_of_known_key_signed_by_another_key(jwks_client, claims):
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode(claims(), stranger, algorithm="RS256", headers={"kid": "rsa-1"})
    _assert_refused(jwks_client.get("/v1/me", headers=bearer(token)), 401, "token_invalid_signature")


def test_rejects_client_token_on_admin_route(client, hs256_token):
    token = hs256_token(role=["client"], tenant="acme")
    _assert_refused(client.get(ADMIN_ROUTE, headers=bearer(token)), 403, "permission_denied")


def test_admin_token_reaches_admin_route_without_secrets(client, hs256_token):
    response = client.get(ADMIN_ROUTE, headers=bearer(hs256_token()))
    assert response.status_code == 200
    assert "jwt_secret" not in response.json()
    assert response.json()["database_backend"] == "sqlite"


def test_rejects_token_without_known_role(client, hs256_token):
    _assert_refused(client.get("/v1/me", headers=bearer(hs256_token(role=["superuser"]))), 403, "role_missing")


def test_rejects_client_token_without_tenant(client, hs256_token):
    _assert_refused(client.get("/v1/me", headers=bearer(hs256_token(role=["client"]))), 403, "tenant_missing")


def test_identity_assurance_claim_reaches_principal(client, hs256_token):
    verified = client.get("/v1/me", headers=bearer(hs256_token(identity_verified=True))).json()
    unverified = client.get("/v1/me", headers=bearer(hs256_token())).json()
    assert verified["identity_verified"] is True
    assert unverified["identity_verified"] is False


def test_keys_fetched_from_jwks_url(tmp_path, claims, rsa_key, loaded_models):
    document = json.dumps(
        {"keys": [{**json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(rsa_key.public_key())), "kid": "url-1"}]}
    ).encode()

    class JwksHandler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(document)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), JwksHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        settings = Settings(
            mode="dev",
            data_dir=tmp_path,
            jwt_algorithms=["RS256"],
            jwt_jwks_url=f"http://127.0.0.1:{server.server_port}/jwks.json",
        )
        with TestClient(create_app(settings, models=loaded_models)) as url_client:
            good = jwt.encode(claims(), rsa_key, algorithm="RS256", headers={"kid": "url-1"})
            assert url_client.get("/v1/me", headers=bearer(good)).status_code == 200
            unknown = jwt.encode(claims(), rsa_key, algorithm="RS256", headers={"kid": "url-2"})
            _assert_refused(url_client.get("/v1/me", headers=bearer(unknown)), 401, "token_unknown_key")
    finally:
        server.shutdown()
