"""The stored log on SQLite and PostgreSQL: write-ahead, integration, checkpoints, proofs, export."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from audit.bundle import verify_bundle
from audit.checkpoint import SigningKey, open_checkpoint
from audit.errors import AuditUnavailable, ForkedCheckpoint, ProofUnavailable
from audit.events import Action
from audit.export import export_bundle
from audit.integrity import check_log_integrity
from audit.merkle import leaf_hash, verify_consistency, verify_inclusion
from audit.store import (
    EventFilter,
    append_event,
    confirm_durable,
    integrate,
    latest_checkpoint,
    list_events,
    prove_consistency,
    prove_inclusion,
)
from tests.audit.storage_helpers import ORIGIN, disable_append_only, event

KEY = SigningKey.generate(name=ORIGIN)


def _append_and_integrate(session: Session, start: int, count: int, **kwargs) -> None:
    for i in range(start, start + count):
        append_event(session, event=event(i, **kwargs))
    session.commit()
    integrate(session, key=KEY, origin=ORIGIN)
    session.commit()


def test_integration_assigns_contiguous_indices_and_signs_checkpoints(db_session):
    _append_and_integrate(db_session, 0, 13)
    first = latest_checkpoint(db_session)
    _append_and_integrate(db_session, 13, 20)
    second = latest_checkpoint(db_session)
    assert (first.tree_size, second.tree_size) == (13, 33)
    checkpoint = open_checkpoint(second.note, verifier=KEY.verifier, origin=ORIGIN)
    for index in (0, 12, 13, 32):
        leaf, stored, proof = prove_inclusion(db_session, index=index)
        assert stored.tree_size == 33
        verify_inclusion(index=index, size=33, leaf=leaf_hash(leaf.entry), proof=proof, root=checkpoint.root_hash)
    verify_consistency(
        old_size=13,
        new_size=33,
        old_root=first.root_hash,
        new_root=second.root_hash,
        proof=prove_consistency(db_session, old_size=13, new_size=33),
    )
    report = check_log_integrity(db_session, verifier=KEY.verifier, origin=ORIGIN)
    assert (report.tree_size, report.checkpoints, report.pending) == (33, 2, 0)


def test_no_checkpoint_when_the_tree_did_not_grow(db_session):
    _append_and_integrate(db_session, 0, 3)
    result = integrate(db_session, key=KEY, origin=ORIGIN)
    assert result.integrated == 0 and result.checkpoint is None and result.tree_size == 3


def test_proof_for_unpublished_size_is_unavailable(db_session):
    _append_and_integrate(db_session, 0, 5)
    with pytest.raises(ProofUnavailable):
        prove_inclusion(db_session, index=5)
    with pytest.raises(ProofUnavailable):
        prove_consistency(db_session, old_size=2, new_size=5)


def test_write_ahead_event_is_confirmed_only_once_committed(db_engine):
    with Session(db_engine) as session:
        pending_id = append_event(session, event=event(1))
        session.rollback()  # the commit never happened
        with pytest.raises(AuditUnavailable):
            confirm_durable(session, pending_id=pending_id)
        pending_id = append_event(session, event=event(2))
        session.commit()
        confirm_durable(session, pending_id=pending_id)
        integrate(session, key=KEY, origin=ORIGIN)
        session.commit()
        confirm_durable(session, pending_id=pending_id)  # still found once integrated


def test_unreachable_store_fails_closed():
    engine = create_engine("postgresql+psycopg://postgres@127.0.0.1:1/nowhere", connect_args={"connect_timeout": 2})
    with Session(engine) as session, pytest.raises(AuditUnavailable):
        append_event(session, event=event(1))
    engine.dispose()


def test_unmigrated_store_fails_closed(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    with Session(engine) as session, pytest.raises(AuditUnavailable):
        append_event(session, event=event(1))
    engine.dispose()


def test_stored_events_cannot_be_updated_or_deleted(db_session):
    _append_and_integrate(db_session, 0, 2)
    for statement in (
        "UPDATE audit_leaves SET action = 'x'",
        "DELETE FROM audit_leaves",
        "DELETE FROM audit_checkpoints",
        "UPDATE audit_nodes SET level = 9",
    ):
        with pytest.raises(DBAPIError):
            db_session.execute(text(statement))
        db_session.rollback()


def test_integrator_refuses_to_sign_a_forked_head(db_session):
    _append_and_integrate(db_session, 0, 8)
    disable_append_only(db_session)
    db_session.execute(text("UPDATE audit_nodes SET hash = :h WHERE level = 3 AND node_index = 0"), {"h": b"\x07" * 32})
    db_session.commit()
    for i in range(8, 11):
        append_event(db_session, event=event(i))
    db_session.commit()
    with pytest.raises(ForkedCheckpoint):
        integrate(db_session, key=KEY, origin=ORIGIN)


def test_list_events_filters_and_paginates(db_session):
    _append_and_integrate(db_session, 0, 10)
    _append_and_integrate(db_session, 10, 4, tenant="globex", action=Action.REQUEST_DENIED)
    page = list_events(db_session, event_filter=EventFilter(tenant="acme"), limit=4)
    assert [leaf.leaf_index for leaf in page] == [0, 1, 2, 3]
    page = list_events(db_session, event_filter=EventFilter(tenant="acme"), after_index=3, limit=100)
    assert [leaf.leaf_index for leaf in page] == list(range(4, 10))
    denied = list_events(db_session, event_filter=EventFilter(action="request.denied", voice_id="voice-1"))
    assert [leaf.leaf_index for leaf in denied] == [10, 13]
    in_window = list_events(db_session, event_filter=EventFilter(since=event(2).time, until=event(5).time))
    assert [leaf.leaf_index for leaf in in_window] == [2, 3, 4]


def test_full_and_selected_exports_verify_offline(db_session, tmp_path):
    _append_and_integrate(db_session, 0, 25)
    assert export_bundle(db_session, directory=tmp_path / "full", verifier=KEY.verifier) == 25
    assert verify_bundle(tmp_path / "full", trusted_key=KEY.verifier, strict=True).event_count == 25
    count = export_bundle(
        db_session, directory=tmp_path / "sel", verifier=KEY.verifier, event_filter=EventFilter(actor_sub="user-1")
    )
    assert count == 6
    assert verify_bundle(tmp_path / "sel", trusted_key=KEY.verifier, strict=True).event_count == 6


def test_audit_identifier_resolves_before_and_after_integration(db_session):
    from audit.errors import AuditEventNotFound
    from audit.store import find_event

    pending_id = append_event(db_session, event=event(7))
    db_session.commit()
    found = find_event(db_session, pending_id=pending_id)
    assert found.leaf_index is None and b'"event-7"' in found.entry
    integrate(db_session, key=KEY, origin=ORIGIN)
    db_session.commit()
    found = find_event(db_session, pending_id=pending_id)
    assert found.leaf_index == 0 and b'"event-7"' in found.entry
    with pytest.raises(AuditEventNotFound):
        find_event(db_session, pending_id=pending_id + 1000)
