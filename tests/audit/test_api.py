"""The audit HTTP API in a real app on SQLite: permissions, events, proofs, consistency, export."""

from __future__ import annotations

import base64
import time

import pytest
from fastapi.testclient import TestClient

from audit.bundle import verify_bundle
from audit.checkpoint import VerifierKey, open_checkpoint
from audit.errors import AuditUnavailable
from audit.events import Action
from audit.merkle import leaf_hash, verify_consistency, verify_inclusion
from gateway.app import create_app
from gateway.auth import Role
from gateway.db import upgrade
from gateway.dependencies import gateway_of
from gateway.dev_tokens import mint_dev_token
from gateway.settings import Settings
from gateway.shared.transactions import commit_write_ahead
from tests.audit.storage_helpers import event


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(mode="dev", data_dir=tmp_path / "data", audit_checkpoint_interval_seconds=0.05)


@pytest.fixture
def client(settings, loaded_models):
    upgrade(settings.resolved_database_url)
    with TestClient(create_app(settings, models=loaded_models)) as test_client:
        yield test_client


def _headers(settings, role: Role, tenant: str | None = None) -> dict[str, str]:
    token = mint_dev_token(settings, subject=f"{role.value}-1", roles=[role], tenant=tenant)
    return {"Authorization": f"Bearer {token}"}


def _append(client, events) -> None:
    with gateway_of(client.app).sessions() as session:
        for item in events:
            commit_write_ahead(session, event=item)


def _wait_for_size(client, settings, size: int) -> dict:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        answer = client.get("/v1/audit/checkpoint", headers=_headers(settings, Role.AUDITOR))
        if answer.status_code == 200 and answer.json()["tree_size"] >= size:
            return answer.json()
        time.sleep(0.05)
    raise AssertionError(f"no checkpoint of size {size} within 10 s")


def test_client_and_owner_tokens_cannot_read_the_log(client, settings):
    for role, tenant in ((Role.CLIENT, "acme"), (Role.OWNER, None)):
        answer = client.get("/v1/audit/events", headers=_headers(settings, role, tenant))
        assert answer.status_code == 403
    assert client.get("/v1/audit/checkpoint").status_code == 401


def test_no_checkpoint_yet_is_a_404(client, settings):
    answer = client.get("/v1/audit/checkpoint", headers=_headers(settings, Role.ADMIN))
    assert answer.status_code == 404 and answer.json()["error"] == "proof_unavailable"


def test_checkpoint_events_proofs_and_consistency(client, settings):
    key = VerifierKey.parse(client.get("/v1/audit/public-key").text)
    _append(client, [event(i) for i in range(5)])
    first = _wait_for_size(client, settings, 5)
    _append(client, [event(i, tenant="globex", action=Action.REQUEST_DENIED) for i in range(5, 12)])
    latest = _wait_for_size(client, settings, 12)
    checkpoint = open_checkpoint(latest["note"], verifier=key)
    assert checkpoint.size == 12

    auditor = _headers(settings, Role.AUDITOR)
    page = client.get("/v1/audit/events", params={"tenant": "globex", "limit": 4}, headers=auditor).json()
    assert [item["index"] for item in page["events"]] == [5, 6, 7, 8] and page["next_after"] == 8
    page = client.get("/v1/audit/events", params={"tenant": "globex", "after": 8}, headers=auditor).json()
    assert [item["index"] for item in page["events"]] == [9, 10, 11] and page["next_after"] is None
    denied = client.get(
        "/v1/audit/events", params={"action": "request.denied", "voice": "voice-0"}, headers=auditor
    ).json()
    assert {item["event"]["subjects"]["voice_id"] for item in denied["events"]} == {"voice-0"}
    window = client.get(
        "/v1/audit/events", params={"since": "2026-11-22T12:00:02", "until": "2026-11-22T13:00:04Z"}, headers=auditor
    ).json()
    assert [item["index"] for item in window["events"]] == list(range(2, 12))

    proof = client.get("/v1/audit/events/7/proof", headers=auditor).json()
    verify_inclusion(
        index=7,
        size=proof["tree_size"],
        leaf=leaf_hash(proof["entry"].encode()),
        proof=[base64.b64decode(p) for p in proof["proof"]],
        root=open_checkpoint(proof["checkpoint"], verifier=key).root_hash,
    )
    consistency = client.get("/v1/audit/consistency", params={"from": 5, "to": 12}, headers=auditor).json()
    verify_consistency(
        old_size=5,
        new_size=12,
        old_root=base64.b64decode(first["root_hash"]),
        new_root=checkpoint.root_hash,
        proof=[base64.b64decode(p) for p in consistency["proof"]],
    )
    assert client.get("/v1/audit/events/99/proof", headers=auditor).status_code == 404


def test_tenant_bound_auditor_sees_only_its_tenant(client, settings):
    _append(client, [event(0, tenant="acme"), event(1, tenant="globex")])
    _wait_for_size(client, settings, 2)
    acme_auditor = _headers(settings, Role.AUDITOR, tenant="acme")
    page = client.get("/v1/audit/events", headers=acme_auditor).json()
    assert [item["event"]["actor"]["tenant"] for item in page["events"]] == ["acme"]
    assert client.get("/v1/audit/events", params={"tenant": "globex"}, headers=acme_auditor).status_code == 403
    assert client.get("/v1/audit/events/1/proof", headers=acme_auditor).status_code == 404


def test_audit_index_probing_by_another_tenants_auditor(client, settings):
    """A tenant's auditor asking for the proof of another tenant's event gets the answer an
    index outside the tree gets, naming neither."""
    _append(client, [event(0, tenant="acme"), event(1, tenant="globex")])
    _wait_for_size(client, settings, 2)
    acme_auditor = _headers(settings, Role.AUDITOR, tenant="acme")
    others = client.get("/v1/audit/events/1/proof", headers=acme_auditor)
    unknown = client.get("/v1/audit/events/99/proof", headers=acme_auditor)
    assert others.status_code == unknown.status_code == 404
    assert others.json() == unknown.json() and others.json()["error"] == "proof_unavailable"
    assert client.get("/v1/audit/events/0/proof", headers=acme_auditor).status_code == 200


def test_export_bundle_verifies_offline_and_is_itself_audited(client, settings, tmp_path):
    key = VerifierKey.parse(client.get("/v1/audit/public-key").text)
    _append(client, [event(i) for i in range(9)])
    _wait_for_size(client, settings, 9)
    for body, mode, count in (({}, "full", 9), ({"actor": "user-1"}, "selected", 2)):
        answer = client.post("/v1/audit/exports", json=body, headers=_headers(settings, Role.AUDITOR))
        assert answer.status_code == 200, answer.text
        target = tmp_path / f"{mode}.tar"
        target.write_bytes(answer.content)
        report = verify_bundle(target, trusted_key=key, strict=True)
        assert (report.mode, report.event_count) == (mode, count)
    exported = _wait_for_size(client, settings, 11)
    assert exported["tree_size"] == 11
    page = client.get(
        "/v1/audit/events", params={"action": "audit.exported"}, headers=_headers(settings, Role.ADMIN)
    ).json()
    assert [item["event"]["actor"]["sub"] for item in page["events"]] == ["auditor-1", "auditor-1"]


def test_write_ahead_fails_closed_when_the_store_is_down(tmp_path):
    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session

    engine = create_engine(f"sqlite:///{tmp_path / 'no-schema.db'}")
    with Session(engine) as session, pytest.raises(AuditUnavailable):
        commit_write_ahead(session, event=event(1))
    engine.dispose()


def test_prod_mode_refuses_to_start_without_an_audit_key(tmp_path):
    from gateway.keyfiles import audit_signing_key as load_audit_signing_key
    from gateway.settings import SettingsError

    settings = Settings.model_construct(**{**Settings(data_dir=tmp_path).model_dump(), "mode": "prod"})
    with pytest.raises(SettingsError, match="AUDIT_SIGNING_KEY_FILE"):
        load_audit_signing_key(settings)


def test_dev_audit_key_is_refused_in_prod(tmp_path):
    from gateway.keyfiles import audit_signing_key as load_audit_signing_key
    from gateway.settings import SettingsError

    dev = Settings(data_dir=tmp_path)
    load_audit_signing_key(dev)  # generates the dev key file
    prod = Settings.model_construct(
        **{**dev.model_dump(), "mode": "prod", "audit_signing_key_file": tmp_path / "audit-dev-signing.key"}
    )
    with pytest.raises(SettingsError, match="dev audit key"):
        load_audit_signing_key(prod)


def test_tampered_log_stops_the_gateway_at_start_up(settings, loaded_models):
    from sqlalchemy import text

    upgrade(settings.resolved_database_url)
    with TestClient(create_app(settings, models=loaded_models)) as running:
        _append(running, [event(i) for i in range(4)])
        _wait_for_size(running, settings, 4)
    app = create_app(settings, models=loaded_models)
    with gateway_of(app).sessions() as session:
        session.execute(text("DROP TRIGGER audit_leaves_no_update"))
        session.execute(
            text("UPDATE audit_leaves SET entry = :e, leaf_hash = :h WHERE leaf_index = 2"),
            {"e": b"{}", "h": leaf_hash(b"{}")},
        )
        session.commit()
    from audit.errors import LogIntegrityError

    with pytest.raises(LogIntegrityError), TestClient(app):
        pass
