"""Signed notes and checkpoints: the Go sumdb/note known answer, forks, wrong keys."""

from __future__ import annotations

import pytest

from audit.checkpoint import (
    Checkpoint,
    SigningKey,
    VerifierKey,
    check_consistent,
    open_checkpoint,
    open_note,
    sign_checkpoint,
)
from audit.errors import (
    CheckpointSignatureInvalid,
    ForkedCheckpoint,
    MalformedCheckpoint,
    SigningKeyError,
    TruncatedLog,
)
from audit.merkle import MemoryTree, consistency_proof

# golang.org/x/mod/sumdb/note's documented example key pair and signed note.
GO_SIGNER = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VERIFIER = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
GO_NOTE = (
    GO_TEXT
    + "\n\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)


def test_signed_note_matches_go_sumdb_note_vector():
    key = SigningKey.parse(GO_SIGNER)
    assert key.verifier.encode() == GO_VERIFIER
    assert key.verifier.key_id.hex() == "c74f20a3"
    assert key.encode() == GO_SIGNER
    assert key.sign_note(GO_TEXT) == GO_NOTE
    assert open_note(GO_NOTE, verifier=VerifierKey.parse(GO_VERIFIER)) == GO_TEXT


def test_edited_note_text_is_refused():
    with pytest.raises(CheckpointSignatureInvalid):
        open_note(GO_NOTE.replace("cryptography", "cryptographY"), verifier=VerifierKey.parse(GO_VERIFIER))


def test_mangled_verifier_keys_are_refused():
    for bad in (
        GO_VERIFIER[:-1],
        GO_VERIFIER.replace("c74f20a3", "c74f20a4"),
        "PeterNeumann+c74f20a3",
        GO_VERIFIER.replace("ARpc", "Apc"),
    ):
        with pytest.raises(SigningKeyError):
            VerifierKey.parse(bad)


@pytest.fixture()
def log_key() -> SigningKey:
    return SigningKey.generate(name="clonegate.test/audit")


def _tree(n: int) -> MemoryTree:
    tree = MemoryTree()
    for i in range(n):
        tree.append_entry(b"entry %d" % i)
    return tree


def test_checkpoint_round_trip(log_key):
    tree = _tree(5)
    checkpoint = Checkpoint("clonegate.test/audit", 5, tree.root())
    note = sign_checkpoint(checkpoint, key=log_key)
    assert note.startswith("clonegate.test/audit\n5\n")
    assert open_checkpoint(note, verifier=log_key.verifier, origin="clonegate.test/audit") == checkpoint


def test_checkpoint_signed_with_wrong_key_is_refused(log_key):
    impostor = SigningKey.generate(name="clonegate.test/audit")
    note = sign_checkpoint(Checkpoint("clonegate.test/audit", 5, _tree(5).root()), key=impostor)
    with pytest.raises(CheckpointSignatureInvalid):
        open_checkpoint(note, verifier=log_key.verifier)


def test_forged_signature_line_with_our_key_id_is_refused(log_key):
    note = sign_checkpoint(Checkpoint("clonegate.test/audit", 5, _tree(5).root()), key=log_key)
    edited = note.replace("\n5\n", "\n6\n", 1)
    with pytest.raises(CheckpointSignatureInvalid):
        open_checkpoint(edited, verifier=log_key.verifier)


def test_malformed_checkpoint_body_is_refused(log_key):
    with pytest.raises(MalformedCheckpoint):
        open_checkpoint(log_key.sign_note("clonegate.test/audit\nminus one\nAAAA\n"), verifier=log_key.verifier)
    with pytest.raises(MalformedCheckpoint):
        open_checkpoint("no blank line\n", verifier=log_key.verifier)


def test_forked_checkpoint_same_size_different_roots_is_detected():
    honest, forked = _tree(6), MemoryTree()
    for i in range(6):
        forked.append_entry(b"entry %d" % i if i != 2 else b"rewritten")
    a = Checkpoint("o", 6, honest.root())
    b = Checkpoint("o", 6, forked.root())
    with pytest.raises(ForkedCheckpoint):
        check_consistent(older=a, newer=b, proof=[])


def test_forked_checkpoint_that_does_not_extend_the_older_one_is_detected():
    honest = _tree(9)
    forked = MemoryTree()
    for i in range(9):
        forked.append_entry(b"entry %d" % i if i != 1 else b"rewritten")
    older = Checkpoint("o", 4, honest.root(4))
    newer = Checkpoint("o", 9, forked.root())
    with pytest.raises(ForkedCheckpoint):
        check_consistent(older=older, newer=newer, proof=consistency_proof(forked.node, old_size=4, new_size=9))
    check_consistent(
        older=older,
        newer=Checkpoint("o", 9, honest.root()),
        proof=consistency_proof(honest.node, old_size=4, new_size=9),
    )


def test_truncated_log_is_detected():
    tree = _tree(9)
    with pytest.raises(TruncatedLog):
        check_consistent(older=Checkpoint("o", 9, tree.root()), newer=Checkpoint("o", 4, tree.root(4)), proof=[])
