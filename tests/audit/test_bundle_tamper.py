"""Export bundles: the offline verifier, and one test per tampering attack it must catch."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from audit.bundle import archive_bundle, verify_bundle, write_bundle
from audit.canonical import canonical_json
from audit.checkpoint import Checkpoint, SigningKey, sign_checkpoint
from audit.errors import (
    BundleEventOutOfOrder,
    BundleMalformed,
    BundleRootMismatch,
    CheckpointSignatureInvalid,
    ForkedCheckpoint,
    InclusionProofInvalid,
    InvalidAuditEvent,
    TruncatedLog,
)
from audit.events import Action, Actor, Aggregate, AuditEvent, Decision, Subjects
from audit.merkle import MemoryTree, inclusion_proof

ORIGIN = "clonegate.test/audit"
KEY = SigningKey.generate(name=ORIGIN)
START = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def _events(n: int) -> list[bytes]:
    actor = Actor(iss="https://issuer.example", sub="ops", role="operator", tenant="acme")
    out = []
    for i in range(n):
        denied = i % 5 == 0
        out.append(
            AuditEvent(
                action=Action.REQUEST_DENIED if denied else Action.REQUEST_ADMITTED,
                decision=Decision.DENY if denied else Decision.ALLOW,
                reason="consent_missing" if denied else None,
                actor=actor,
                subjects=Subjects(request_id=f"req-{i}", voice_id=f"voice-{i % 3}"),
                time=START + timedelta(seconds=i),
                event_id=f"event-{i}",
            ).canonical_bytes()
        )
    return out


def _build(
    tmp_path: Path,
    entries: list[bytes],
    *,
    mode: str = "full",
    key: SigningKey = KEY,
    selected: list[int] | None = None,
    name: str = "bundle",
) -> tuple[Path, MemoryTree, str]:
    tree = MemoryTree()
    for entry in entries:
        tree.append_entry(entry)
    note = sign_checkpoint(Checkpoint(ORIGIN, tree.size, tree.root()), key=key)
    indices = range(tree.size) if selected is None else selected
    lines = (
        (i, entries[i], inclusion_proof(tree.node, index=i, size=tree.size) if mode == "selected" else None)
        for i in indices
    )
    path = tmp_path / name
    write_bundle(
        path,
        checkpoint_note=note,
        checkpoint=Checkpoint(ORIGIN, tree.size, tree.root()),
        verifier=key.verifier,
        lines=lines,
        mode=mode,
        created="2026-11-22T12:00:00Z",
    )
    return path, tree, note


def _edit_lines(bundle: Path, edit) -> None:
    path = bundle / "events.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    lines = edit(lines)
    path.write_bytes(b"".join(lines))
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["event_count"] = len(lines)
    (bundle / "manifest.json").write_text(json.dumps(manifest))


def test_intact_bundle_verifies_as_directory_and_tar(tmp_path):
    bundle, tree, _ = _build(tmp_path, _events(37))
    report = verify_bundle(bundle, trusted_key=KEY.verifier, strict=True)
    assert (report.event_count, report.tree_size, report.root_hash) == (37, 37, tree.root())
    assert report.actions == {"request.denied": 8, "request.admitted": 29}
    archive_bundle(bundle, tmp_path / "bundle.tar")
    assert verify_bundle(tmp_path / "bundle.tar", trusted_key=KEY.verifier).event_count == 37


def test_edited_event(tmp_path):
    bundle, _, _ = _build(tmp_path, _events(37))
    _edit_lines(bundle, lambda lines: [line.replace(b"req-12", b"req-99") for line in lines])
    with pytest.raises(BundleRootMismatch):
        verify_bundle(bundle, trusted_key=KEY.verifier)


def test_deleted_event(tmp_path):
    bundle, _, _ = _build(tmp_path, _events(37))
    _edit_lines(bundle, lambda lines: lines[:20] + lines[21:])
    with pytest.raises(BundleEventOutOfOrder, match="line 21 holds index 21, expected 20"):
        verify_bundle(bundle, trusted_key=KEY.verifier)


def test_export_with_an_event_dropped_and_renumbered(tmp_path):
    entries = _events(37)
    bundle, _, _ = _build(tmp_path, entries)
    renumbered = [b'{"index":%d,"entry":%s}\n' % (i, e) for i, e in enumerate(entries[:5] + entries[6:])]
    _edit_lines(bundle, lambda lines: renumbered)
    with pytest.raises(TruncatedLog, match="36 events but its checkpoint signs 37"):
        verify_bundle(bundle, trusted_key=KEY.verifier)


def test_reordered_events(tmp_path):
    bundle, _, _ = _build(tmp_path, _events(37))
    _edit_lines(bundle, lambda lines: lines[:3] + [lines[4], lines[3]] + lines[5:])
    with pytest.raises(BundleEventOutOfOrder, match="expected 3"):
        verify_bundle(bundle, trusted_key=KEY.verifier)


def test_reordered_events_with_renumbered_indices(tmp_path):
    entries = _events(37)
    bundle, _, _ = _build(tmp_path, entries)
    swapped = entries[:3] + [entries[4], entries[3]] + entries[5:]
    _edit_lines(bundle, lambda lines: [b'{"index":%d,"entry":%s}\n' % (i, e) for i, e in enumerate(swapped)])
    with pytest.raises(BundleRootMismatch):
        verify_bundle(bundle, trusted_key=KEY.verifier)


def test_truncated_log_against_previous_checkpoint(tmp_path):
    _, _, later_note = _build(tmp_path, _events(37), name="later")
    shorter, _, _ = _build(tmp_path, _events(30), name="shorter")
    with pytest.raises(TruncatedLog, match="previous checkpoint has 37"):
        verify_bundle(shorter, trusted_key=KEY.verifier, previous_checkpoint=later_note)


def test_truncated_bundle_events(tmp_path):
    bundle, _, _ = _build(tmp_path, _events(37))
    _edit_lines(bundle, lambda lines: lines[:30])
    with pytest.raises(TruncatedLog):
        verify_bundle(bundle, trusted_key=KEY.verifier)


def test_forked_checkpoint_same_size(tmp_path):
    entries = _events(37)
    _, _, honest_note = _build(tmp_path, entries, name="honest")
    forked_entries = list(entries)
    forked_entries[7] = _events(40)[39]
    forked, _, _ = _build(tmp_path, forked_entries, name="forked")
    with pytest.raises(ForkedCheckpoint, match="size 37"):
        verify_bundle(forked, trusted_key=KEY.verifier, previous_checkpoint=honest_note)


def test_forked_history_behind_a_longer_checkpoint(tmp_path):
    entries = _events(50)
    _, _, old_note = _build(tmp_path, entries[:20], name="old")
    rewritten = list(entries)
    rewritten[3] = _events(60)[55]
    forked, _, _ = _build(tmp_path, rewritten, name="rewritten")
    with pytest.raises(ForkedCheckpoint, match=r"events 0\.\.19"):
        verify_bundle(forked, trusted_key=KEY.verifier, previous_checkpoint=old_note)
    honest, _, _ = _build(tmp_path, entries, name="honest")
    report = verify_bundle(honest, trusted_key=KEY.verifier, previous_checkpoint=old_note)
    assert report.previous_size == 20


def test_wrong_signing_key(tmp_path):
    impostor = SigningKey.generate(name=ORIGIN)
    bundle, _, _ = _build(tmp_path, _events(10), key=impostor)
    with pytest.raises(CheckpointSignatureInvalid):
        verify_bundle(bundle, trusted_key=KEY.verifier)
    # Even with our public key file put back, the checkpoint signature gives it away.
    (bundle / "public_key").write_text(KEY.verifier.encode() + "\n")
    with pytest.raises(CheckpointSignatureInvalid):
        verify_bundle(bundle, trusted_key=KEY.verifier)


def test_selected_export_verifies_with_inclusion_proofs(tmp_path):
    bundle, _, _ = _build(tmp_path, _events(37), mode="selected", selected=[0, 5, 10, 36])
    report = verify_bundle(bundle, trusted_key=KEY.verifier, strict=True)
    assert report.event_count == 4 and report.mode == "selected"


def test_proof_for_a_different_entry(tmp_path):
    entries = _events(37)
    bundle, _, _ = _build(tmp_path, entries, mode="selected", selected=[5, 10])

    def swap_proofs(lines):
        first, second = json.loads(lines[0]), json.loads(lines[1])
        first["proof"], second["proof"] = second["proof"], first["proof"]
        return [b'{"index":5,"proof":%s,"entry":%s}\n' % (json.dumps(first["proof"]).encode(), entries[5]), lines[1]]

    _edit_lines(bundle, swap_proofs)
    with pytest.raises(InclusionProofInvalid, match="index 5"):
        verify_bundle(bundle, trusted_key=KEY.verifier)


def test_edited_event_in_selected_export(tmp_path):
    bundle, _, _ = _build(tmp_path, _events(37), mode="selected", selected=[5, 10])
    _edit_lines(bundle, lambda lines: [lines[0].replace(b"req-5", b"req-6"), lines[1]])
    with pytest.raises(InclusionProofInvalid, match="index 5"):
        verify_bundle(bundle, trusted_key=KEY.verifier)


def test_event_that_is_not_an_event_is_refused(tmp_path):
    junk = [b'{"hello":"world"}']
    bundle, _, _ = _build(tmp_path, _events(3) + junk)
    with pytest.raises(InvalidAuditEvent, match="event 3"):
        verify_bundle(bundle, trusted_key=KEY.verifier)


def test_malformed_bundles_are_refused(tmp_path):
    with pytest.raises(BundleMalformed):
        verify_bundle(tmp_path / "missing", trusted_key=KEY.verifier)
    bundle, _, _ = _build(tmp_path, _events(3))
    (bundle / "events.jsonl").write_bytes(b"not json\n")
    with pytest.raises(BundleMalformed):
        verify_bundle(bundle, trusted_key=KEY.verifier)


def test_parallel_verification_finds_the_same_tampering(tmp_path, monkeypatch):
    import audit.bundle_chunks

    monkeypatch.setattr(audit.bundle_chunks, "CHUNK_BYTES", 700)  # many small chunks
    entries = _events(37)
    bundle, tree, note = _build(tmp_path, entries)
    report = verify_bundle(bundle, trusted_key=KEY.verifier, workers=2, previous_checkpoint=note)
    assert (report.event_count, report.root_hash) == (37, tree.root())
    _edit_lines(bundle, lambda lines: lines[:30] + lines[31:])
    with pytest.raises(BundleEventOutOfOrder, match="line 31 holds index 31, expected 30"):
        verify_bundle(bundle, trusted_key=KEY.verifier, workers=2)
    edited, _, _ = _build(tmp_path, entries, name="edited")
    _edit_lines(edited, lambda lines: [line.replace(b"req-33", b"req-77") for line in lines])
    with pytest.raises(BundleRootMismatch):
        verify_bundle(edited, trusted_key=KEY.verifier, workers=2)


@pytest.mark.parametrize("count", [1, 2, 37, 101])
@pytest.mark.parametrize("parts", [1, 3, 8])
def test_byte_ranges_cover_every_line_exactly_once(tmp_path, monkeypatch, count, parts):
    import audit.bundle_chunks
    from audit.bundle_chunks import check_range, plan_ranges

    monkeypatch.setattr(audit.bundle_chunks, "CHUNK_BYTES", 500)
    bundle, tree, _ = _build(tmp_path, _events(count))
    path = bundle / "events.jsonl"
    ranges = plan_ranges((path, 0, path.stat().st_size), parts=parts, strict=False)
    results = [check_range(task) for task in ranges]
    leaves = b"".join(result[0] for result in results)
    assert [tree.node(0, i) for i in range(count)] == [leaves[i : i + 32] for i in range(0, len(leaves), 32)]
    expected = 0
    for result in results:
        if result[5]:
            assert result[4] == expected
            expected += result[5]
    assert expected == count


def test_parallel_verification_of_a_tar_bundle(tmp_path, monkeypatch):
    import audit.bundle_chunks

    monkeypatch.setattr(audit.bundle_chunks, "CHUNK_BYTES", 900)
    bundle, tree, _ = _build(tmp_path, _events(60))
    archive_bundle(bundle, tmp_path / "bundle.tar")
    report = verify_bundle(tmp_path / "bundle.tar", trusted_key=KEY.verifier, workers=3)
    assert (report.event_count, report.root_hash) == (60, tree.root())


def test_event_with_trailing_bytes_is_refused(tmp_path):
    entries = _events(3)
    bundle, _, _ = _build(tmp_path, entries[:2] + [entries[2] + b" "])
    with pytest.raises(InvalidAuditEvent, match="event 2 has bytes after"):
        verify_bundle(bundle, trusted_key=KEY.verifier)


def test_bundle_with_an_aggregated_rate_limit_event_verifies(tmp_path):
    """`request.rate_limited` events carry an `aggregate` member; the verifier knows it (and only it)."""
    aggregated = AuditEvent(
        action=Action.REQUEST_RATE_LIMITED,
        decision=Decision.DENY,
        reason="tenant_synthesis_requests_per_minute",
        actor=Actor(iss="https://issuer.example", sub="studio-1", role="client", tenant="acme"),
        aggregate=Aggregate(count=12_275, since=START, until=START + timedelta(seconds=59)),
        time=START + timedelta(minutes=1),
        event_id="event-aggregated",
    ).canonical_bytes()
    bundle, tree, _ = _build(tmp_path, [*_events(4), aggregated])
    for strict in (False, True):
        report = verify_bundle(bundle, trusted_key=KEY.verifier, strict=strict)
        assert report.actions["request.rate_limited"] == 1 and report.root_hash == tree.root()
    smuggled = json.loads(_events(1)[0]) | {"notes": "free text"}
    bundle, _, _ = _build(tmp_path, [canonical_json(smuggled)], name="smuggled")
    with pytest.raises(InvalidAuditEvent):
        verify_bundle(bundle, trusted_key=KEY.verifier)
