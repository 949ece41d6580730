"""SIGTERM drains: the server stops accepting, a request in flight that finishes before the
deadline is released, one that does not is cancelled (reason ``shutdown``) with its use given back.

The app runs under a real uvicorn server on a loopback port. The stop is what uvicorn's SIGTERM
handler does (uvicorn/server.py, `Server.handle_exit`: ``self.should_exit = True``), set on
the server object because the server runs in a thread here; everything after it is uvicorn's
own shutdown: close the listening socket, wait up to ``timeout_graceful_shutdown`` for the
requests in flight, cancel the rest, run the app's lifespan shutdown.
"""

from __future__ import annotations

import dataclasses
import threading
import time

import httpx
import pytest
import uvicorn
from sqlalchemy import func, select

from audit.events import Action, AuditEvent
from audit.models import Leaf, PendingEvent
from gateway.app import create_app
from gateway.db import create_db_engine, make_session_factory
from gateway.replicas.models import RequestLease
from gateway.settings import Settings
from policy.consent.models import Consent, UsageRecord
from tests.gateway.conftest import bearer, free_port
from tests.gateway.synthesis_fixtures import PURPOSE, TENANT, ready_gateway

SHORT = "Finish me before the deadline, please."
HANGING = "This one hangs until it is cancelled."


class GatedEngine:
    """The real embedded engine; a text that is `HANGING` runs until its cancel token is set,
    and `SHORT` waits for the test to open the gate."""

    def __init__(self, real) -> None:
        self.real = real
        self.gate = threading.Event()

    def __getattr__(self, name):
        return getattr(self.real, name)

    def synthesize(self, *, text, language, voice, controls, cancel=None):
        if text == HANGING:
            while not cancel.cancelled:
                time.sleep(0.05)
            cancel.raise_if_cancelled()
        if text == SHORT:
            self.gate.wait(60)
        return self.real.synthesize(text=text, language=language, voice=voice, controls=controls, cancel=cancel)


def _events(url: str) -> list[AuditEvent]:
    engine = create_db_engine(url)
    try:
        with make_session_factory(engine)() as session:
            rows = [
                *session.execute(select(Leaf.pending_id, Leaf.entry)),
                *session.execute(select(PendingEvent.id, PendingEvent.entry)),
            ]
    finally:
        engine.dispose()
    return [AuditEvent.from_canonical_bytes(bytes(entry)) for _, entry in sorted(rows)]


def _count(url: str, query):
    engine = create_db_engine(url)
    try:
        with make_session_factory(engine)() as session:
            return session.scalar(query)
    finally:
        engine.dispose()


def test_sigterm_drains_in_flight_requests(tmp_path, loaded_models, speech_dir, hs256_token):
    settings = Settings(mode="dev", data_dir=tmp_path / "data", engine_max_concurrency=2)
    engine = GatedEngine(loaded_models.engine)
    models = dataclasses.replace(loaded_models, engine=engine)
    with ready_gateway(settings, models, speech_dir, reference_clip=4) as (_, _, voice):
        pass  # seeded: cohort and a granted voice; this app has stopped
    app = create_app(settings, models=models)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=20)
    )
    serving = threading.Thread(target=server.run, daemon=True)
    serving.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/readyz", timeout=5).status_code == 200:
                break
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    url = settings.resolved_database_url
    uses_before = _count(url, select(Consent.uses).where(Consent.id == voice.consent_id))

    token = hs256_token(sub="studio-1", role=["client"], tenant=TENANT)
    answers: dict[str, object] = {}

    def ask(text: str) -> None:
        body = {"voice_id": voice.voice_id, "text": text, "language": "en", "purpose": PURPOSE, "format": "wav"}
        try:
            answers[text] = httpx.post(f"{base}/v1/synthesize", json=body, headers=bearer(token), timeout=120)
        except httpx.HTTPError as exc:
            answers[text] = exc

    askers = [threading.Thread(target=ask, args=(text,)) for text in (SHORT, HANGING)]
    for asker in askers:
        asker.start()
    deadline = time.monotonic() + 60
    while _count(url, select(func.count()).select_from(RequestLease)) < 2:
        assert time.monotonic() < deadline, "the two requests were not admitted"
        time.sleep(0.1)

    server.should_exit = True  # SIGTERM
    time.sleep(0.5)
    with pytest.raises(httpx.ConnectError):  # no longer accepting
        httpx.get(f"{base}/healthz", timeout=5)
    engine.gate.set()  # the short request finishes within the deadline
    for asker in askers:
        asker.join(120)
    serving.join(60)
    assert not serving.is_alive()

    finished = answers[SHORT]
    assert isinstance(finished, httpx.Response) and finished.status_code == 200, finished
    assert finished.headers["content-type"].startswith("audio/")
    assert not (isinstance(answers[HANGING], httpx.Response) and answers[HANGING].status_code == 200)

    outcomes = {
        event.subjects.request_id: event
        for event in _events(url)
        if event.action in (Action.REQUEST_RELEASED, Action.REQUEST_CANCELLED, Action.REQUEST_FAILED)
    }
    admitted = [event for event in _events(url) if event.action is Action.REQUEST_ADMITTED]
    last_two = [outcomes[event.subjects.request_id] for event in admitted[-2:]]
    assert sorted((event.action.value, event.reason) for event in last_two) == [
        ("request.cancelled", "shutdown"),
        ("request.released", None),
    ]
    assert _count(url, select(func.count()).select_from(RequestLease)) == 0
    # The cancelled request's use came back; the released one spent its own.
    assert _count(url, select(Consent.uses).where(Consent.id == voice.consent_id)) == uses_before + 1
    assert _count(url, select(func.count()).where(UsageRecord.consent_id == voice.consent_id)) == uses_before + 1
