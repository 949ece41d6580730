"""One served gateway per test module: the real app behind uvicorn on a loopback port, reached by
the official `openai` client, with one voice granted to tenant `acme` for narration."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import jwt
import openai
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from gateway.settings import LimitSet, RateLimits, Settings
from tests.gateway.conftest import free_port
from tests.gateway.synthesis_fixtures import PURPOSE, TENANT, GrantedVoice, ready_gateway

# Tenant `acme` speaks through OpenAI clients with a default purpose; `globex` has none.
OTHER_TENANT = "globex"
ALIAS = "alloy"
LIMITED_TENANT = "initech"  # one synthesis request a minute


@dataclass(frozen=True)
class Served:
    app: FastAPI
    client: TestClient  # for arranging state; requests under test go through `openai`
    voice: GrantedVoice
    base_url: str
    settings: Settings

    def token(self, *, sub: str = "studio-1", role: str = "client", tenant: str | None = TENANT) -> str:
        now = int(time.time())
        claims = {
            "iss": self.settings.jwt_issuer,
            "aud": self.settings.jwt_audience,
            "sub": sub,
            "iat": now,
            "nbf": now,
            "exp": now + 600,
            "role": [role],
        }
        if tenant is not None:
            claims["tenant"] = tenant
        return jwt.encode(claims, self.settings.jwt_secret.get_secret_value(), algorithm="HS256")

    def openai(self, token: str | None = None) -> openai.OpenAI:
        # No retries: a refusal must surface as the typed error of the first answer.
        return openai.OpenAI(base_url=self.base_url, api_key=token or self.token(), max_retries=0, timeout=180)


@pytest.fixture(scope="module")
def served(tmp_path_factory, loaded_models, speech_dir) -> Iterator[Served]:
    settings = Settings(
        mode="dev",
        data_dir=tmp_path_factory.mktemp("openai"),
        openai_default_purposes={TENANT: PURPOSE},
        synthesis_deny_patterns=[r"\bwire (the )?money\b"],
        engine_max_queue=0,  # one job at a time and none waiting: a second one is refused (429)
        rate_limits=RateLimits(tenants={LIMITED_TENANT: LimitSet(synthesis_requests_per_minute=1)}),
    )
    with ready_gateway(settings, loaded_models, speech_dir, reference_clip=2) as (client, app, voice):
        settings.openai_voice_aliases[TENANT] = {ALIAS: voice.voice_id}  # the tenant's alias for its voice
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.05)
        try:
            yield Served(app=app, client=client, voice=voice, base_url=f"http://127.0.0.1:{port}/v1", settings=settings)
        finally:
            server.should_exit = True
            thread.join(10)
