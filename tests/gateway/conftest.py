"""Gateway fixtures: an app on a fresh SQLite data folder, a client, and token makers."""

from __future__ import annotations

import dataclasses
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import jwt
import pytest
from fastapi.testclient import TestClient

from gateway.app import create_app
from gateway.db import upgrade
from gateway.dependencies import gateway_of, synthesis_service
from gateway.settings import Settings
from gateway.synthesis.service import SynthesisService


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


@contextmanager
def synthesis_replaced(app, *, sessions=None, **components) -> Iterator[SynthesisService]:
    """Within the block, `POST /v1/synthesize` runs on other parts (a broken watermark stack, a
    dead database): a synthesis service built from them replaces the app's through its dependency."""
    gateway = gateway_of(app)
    service = SynthesisService(
        sessions=sessions or gateway.sessions,
        components=dataclasses.replace(gateway.components, **components),
        rate_limiter=gateway.rate_limiter,
        replica=gateway.replica,
    )
    app.dependency_overrides[synthesis_service] = lambda: service
    try:
        yield service
    finally:
        app.dependency_overrides.pop(synthesis_service, None)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory, loaded_models, speech_dir):
    """A ready gateway (engine warm, cohort seeded) with one voice granted to tenant `acme`."""
    # Imported here: the synthesis helpers import `bearer` from this module.
    from tests.gateway.synthesis_fixtures import ready_gateway

    settings = Settings(
        mode="dev", data_dir=tmp_path_factory.mktemp("synthesis"), synthesis_deny_patterns=[r"\bwire (the )?money\b"]
    )
    with ready_gateway(settings, loaded_models, speech_dir, reference_clip=1) as ready:
        yield ready


@pytest.fixture
def client_token(hs256_token):
    return hs256_token(sub="studio-1", role=["client"], tenant="acme")  # synthesis_fixtures.TENANT
