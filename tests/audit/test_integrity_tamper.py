"""The start-up integrity check (``clonegate audit check``) against tampering in the database.

Each test first does what an attacker with owner rights would: disable the append-only
triggers, then rewrite the tables. The check must name what it found.
"""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from audit.checkpoint import Checkpoint, SigningKey, sign_checkpoint
from audit.errors import CheckpointSignatureInvalid, LogIntegrityError
from audit.integrity import check_log_integrity
from audit.merkle import leaf_hash
from audit.store import append_event, integrate
from tests.audit.storage_helpers import ORIGIN, disable_append_only, event

KEY = SigningKey.generate(name=ORIGIN)


@pytest.fixture()
def log_session(db_session):
    for batch in ((0, 9), (9, 12)):
        for i in range(*batch):
            append_event(db_session, event=event(i))
        db_session.commit()
        integrate(db_session, key=KEY, origin=ORIGIN)
        db_session.commit()
    check_log_integrity(db_session, verifier=KEY.verifier, origin=ORIGIN)
    disable_append_only(db_session)
    db_session.commit()
    return db_session


def _entry(session, index: int) -> bytes:
    return bytes(session.scalar(text("SELECT entry FROM audit_leaves WHERE leaf_index = :i"), {"i": index}))


def test_edited_event(log_session):
    edited = _entry(log_session, 4).replace(b"req-4", b"req-x")
    log_session.execute(text("UPDATE audit_leaves SET entry = :e WHERE leaf_index = 4"), {"e": edited})
    with pytest.raises(LogIntegrityError, match="leaf 4"):
        check_log_integrity(log_session, verifier=KEY.verifier, origin=ORIGIN)


def test_edited_event_with_recomputed_leaf_hash(log_session):
    edited = _entry(log_session, 4).replace(b"req-4", b"req-x")
    log_session.execute(
        text("UPDATE audit_leaves SET entry = :e, leaf_hash = :h WHERE leaf_index = 4"),
        {"e": edited, "h": leaf_hash(edited)},
    )
    with pytest.raises(LogIntegrityError, match="signed checkpoint of size 9"):
        check_log_integrity(log_session, verifier=KEY.verifier, origin=ORIGIN)


def test_deleted_event(log_session):
    log_session.execute(text("DELETE FROM audit_leaves WHERE leaf_index = 6"))
    with pytest.raises(LogIntegrityError, match="leaf index 6 is missing"):
        check_log_integrity(log_session, verifier=KEY.verifier, origin=ORIGIN)


def test_reordered_events(log_session):
    a, b = _entry(log_session, 2), _entry(log_session, 3)
    for index, entry in ((2, b), (3, a)):
        log_session.execute(
            text("UPDATE audit_leaves SET entry = :e, leaf_hash = :h WHERE leaf_index = :i"),
            {"e": entry, "h": leaf_hash(entry), "i": index},
        )
    with pytest.raises(LogIntegrityError, match="do not hash to the signed checkpoint"):
        check_log_integrity(log_session, verifier=KEY.verifier, origin=ORIGIN)


def test_truncated_log(log_session):
    log_session.execute(text("DELETE FROM audit_leaves WHERE leaf_index >= 10"))
    with pytest.raises(LogIntegrityError, match="truncated"):
        check_log_integrity(log_session, verifier=KEY.verifier, origin=ORIGIN)


def test_forked_checkpoint_cannot_be_stored_next_to_the_original(log_session):
    forged = sign_checkpoint(Checkpoint(ORIGIN, 12, b"\x01" * 32), key=KEY)
    with pytest.raises(IntegrityError):
        log_session.execute(
            text(
                "INSERT INTO audit_checkpoints (tree_size, root_hash, note, created_at) "
                "VALUES (12, :r, :n, CURRENT_TIMESTAMP)"
            ),
            {"r": b"\x01" * 32, "n": forged},
        )


def test_forked_checkpoint_replacing_the_original(log_session):
    # Even a correctly signed checkpoint (stolen key) is caught if the stored leaves disagree with it.
    forged = sign_checkpoint(Checkpoint(ORIGIN, 12, b"\x01" * 32), key=KEY)
    log_session.execute(
        text("UPDATE audit_checkpoints SET root_hash = :r, note = :n WHERE tree_size = 12"),
        {"r": b"\x01" * 32, "n": forged},
    )
    with pytest.raises(LogIntegrityError, match="size 12"):
        check_log_integrity(log_session, verifier=KEY.verifier, origin=ORIGIN)


def test_wrong_signing_key(log_session):
    impostor = SigningKey.generate(name=ORIGIN)
    with pytest.raises(CheckpointSignatureInvalid):
        check_log_integrity(log_session, verifier=impostor.verifier, origin=ORIGIN)
    root = bytes(log_session.scalar(text("SELECT root_hash FROM audit_checkpoints WHERE tree_size = 12")))
    log_session.execute(
        text("UPDATE audit_checkpoints SET note = :n WHERE tree_size = 12"),
        {"n": sign_checkpoint(Checkpoint(ORIGIN, 12, root), key=impostor)},
    )
    with pytest.raises(CheckpointSignatureInvalid, match="size 12"):
        check_log_integrity(log_session, verifier=KEY.verifier, origin=ORIGIN)


def test_altered_proof_node(log_session):
    log_session.execute(
        text("UPDATE audit_nodes SET hash = :h WHERE level = 1 AND node_index = 1"), {"h": b"\x05" * 32}
    )
    with pytest.raises(LogIntegrityError, match="level 1, index 1"):
        check_log_integrity(log_session, verifier=KEY.verifier, origin=ORIGIN)
