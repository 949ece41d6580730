"""Gateway fixtures: an app on a fresh SQLite data folder, a client, and token makers."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

import jwt
import pytest
from fastapi.testclient import TestClient

from gateway.app import create_app
from gateway.db import upgrade
from gateway.settings import Settings


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(mode="dev", data_dir=tmp_path / "data")


@pytest.fixture
def client(settings, loaded_models) -> TestClient:
    upgrade(settings.resolved_database_url)
    with TestClient(create_app(settings, models=loaded_models)) as test_client:
        yield test_client


@pytest.fixture
def claims(settings) -> Callable[..., dict]:
    """Valid claims for the test settings; keyword arguments override or (with None) remove."""

    def make(**overrides) -> dict:
        now = int(time.time())
        base = {
            "iss": settings.jwt_issuer,
            "aud": settings.jwt_audience,
            "sub": "alice",
            "iat": now,
            "nbf": now,
            "exp": now + 600,
            "role": ["admin"],
        }
        base.update(overrides)
        return {key: value for key, value in base.items() if value is not None}

    return make


@pytest.fixture
def hs256_token(settings, claims) -> Callable[..., str]:
    def make(**overrides) -> str:
        return jwt.encode(claims(**overrides), settings.jwt_secret.get_secret_value(), algorithm="HS256")

    return make


def free_port() -> int:
    """A loopback port nobody listens on now, for a real server under test."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
