"""Export bundles and their offline verifier (no database, no network).

A bundle is a directory, or a tar archive of one, holding:

* ``manifest.json``  - format, mode (``full`` or ``selected``), origin, tree size, event count;
* ``checkpoint``     - the signed checkpoint (C2SP signed note) the bundle is checked against;
* ``public_key``     - the log's verifier key, for convenience only: the verifier is always
  given the key it trusts, and a bundle whose key differs is refused;
* ``events.jsonl``   - one line per event: ``{"index":N,"entry":<canonical event>}``; in
  ``selected`` mode ``{"index":N,"proof":[base64...],"entry":<canonical event>}``.

The entry is embedded byte for byte, so a verifier slices it out of the line and hashes it
without re-encoding. ``full`` bundles hold every leaf from 0 to the checkpoint's size and are
verified in one streaming pass with a compact range (O(log n) memory); ``selected`` bundles
(a filtered export) carry an RFC 6962 inclusion proof per event.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import tarfile
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast

from audit.bundle_chunks import (
    ENTRY_MARK,
    INDEX_PREFIX,
    RangeResult,
    check_chunk,
    check_range,
    event_shape_error,
    plan_ranges,
    read_chunks,
)
from audit.checkpoint import Checkpoint, VerifierKey, open_checkpoint
from audit.errors import (
    AuditError,
    BundleEventOutOfOrder,
    BundleMalformed,
    BundleRootMismatch,
    CheckpointSignatureInvalid,
    ForkedCheckpoint,
    InclusionProofInvalid,
    InvalidAuditEvent,
    TruncatedLog,
)
from audit.events import AuditEvent
from audit.merkle import CompactRange, leaf_hash, verify_inclusion

FORMAT = "clonegate-audit-bundle"
FORMAT_VERSION = 1
MODES = ("full", "selected")


def encode_line(*, index: int, entry: bytes, proof: list[bytes] | None = None) -> bytes:
    if proof is None:
        return b'{"index":%d,"entry":%s}\n' % (index, entry)
    proof_json = json.dumps([base64.b64encode(item).decode() for item in proof], separators=(",", ":"))
    return b'{"index":%d,"proof":%s,"entry":%s}\n' % (index, proof_json.encode(), entry)


def write_bundle(
    directory: Path,
    *,
    checkpoint_note: str,
    checkpoint: Checkpoint,
    verifier: VerifierKey,
    lines: Iterable[tuple[int, bytes, list[bytes] | None]],
    mode: str,
    created: str,
) -> int:
    """Write a bundle directory; ``lines`` yields (leaf index, entry, proof or None). Returns the count."""
    if mode not in MODES:
        raise BundleMalformed(f"unknown bundle mode {mode!r}")
    directory.mkdir(parents=True, exist_ok=False)
    count = 0
    with open(directory / "events.jsonl", "wb", buffering=1 << 20) as out:
        for index, entry, proof in lines:
            out.write(encode_line(index=index, entry=entry, proof=proof if mode == "selected" else None))
            count += 1
    (directory / "checkpoint").write_text(checkpoint_note, encoding="utf-8")
    (directory / "public_key").write_text(verifier.encode() + "\n", encoding="utf-8")
    manifest = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "mode": mode,
        "origin": checkpoint.origin,
        "tree_size": checkpoint.size,
        "event_count": count,
        "created": created,
    }
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return count


def archive_bundle(directory: Path, archive: Path) -> None:
    """Pack a bundle directory into an uncompressed tar (streams well; events are hashes and ids)."""
    with tarfile.open(archive, "w") as tar:
        for name in ("manifest.json", "checkpoint", "public_key", "events.jsonl"):
            tar.add(directory / name, arcname=name)


MemberLocation = tuple[str, int, int]  # (file, byte offset, length) of a member


class _BundleMembers:
    """The files of a bundle, a directory or a tar archive: opened as streams, and located as
    byte ranges of one file where workers can read their own ranges (a directory or a plain tar)."""

    def __init__(self, bundle: Path, tar: tarfile.TarFile | None) -> None:
        self._bundle = bundle
        self._tar = tar
        self._plain = tar is not None and _is_plain_tar(bundle)

    def open(self, name: str) -> IO[bytes]:
        if self._tar is None:
            path = self._bundle / name
            if not path.is_file():
                raise BundleMalformed(f"bundle has no {name}")
            return open(path, "rb", buffering=1 << 20)
        try:
            member = self._tar.getmember(name)
        except KeyError:
            raise BundleMalformed(f"bundle has no {name}") from None
        handle = self._tar.extractfile(member) if member.isfile() else None
        if handle is None:
            raise BundleMalformed(f"{name} in the bundle is not a regular file")
        return io.BufferedReader(handle, buffer_size=1 << 20)  # type: ignore[type-var]  # tar's reader is raw-readable

    def locate(self, name: str) -> MemberLocation | None:
        if self._tar is None:
            path = self._bundle / name
            return (str(path), 0, path.stat().st_size)
        if not self._plain:  # byte ranges can be read directly only in an uncompressed archive
            return None
        member = self._tar.getmember(name)
        return (str(self._bundle), member.offset_data, member.size)


@contextmanager
def _members(bundle: Path) -> Iterator[_BundleMembers]:
    if bundle.is_dir():
        yield _BundleMembers(bundle, None)
        return
    try:
        # opened outside `with` so that only a failure to open is reported as "not an archive"
        tar = tarfile.open(bundle, "r:*")  # noqa: SIM115
    except (OSError, tarfile.TarError) as exc:
        raise BundleMalformed(f"{bundle.name} is neither a bundle directory nor a tar archive: {exc}") from exc
    with tar:
        yield _BundleMembers(bundle, tar)


def _is_plain_tar(bundle: Path) -> bool:
    try:
        with tarfile.open(bundle, "r:"):
            return True
    except tarfile.TarError:
        return False


def _read_text(members: _BundleMembers, name: str, limit: int = 1 << 16) -> str:
    with members.open(name) as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise BundleMalformed(f"{name} is larger than {limit} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BundleMalformed(f"{name} is not UTF-8") from exc


@dataclass
class BundleReport:
    """What was verified; the CLI prints it."""

    origin: str
    mode: str
    tree_size: int
    root_hash: bytes
    key: str
    event_count: int
    actions: dict[str, int] = field(default_factory=dict)
    first_time: str | None = None
    last_time: str | None = None
    previous_size: int | None = None
    previous_checked: str | None = None

    def lines(self) -> list[str]:
        out = [
            f"OK  checkpoint signature by {self.key}",
            f"OK  origin {self.origin}, tree size {self.tree_size}, root {base64.b64encode(self.root_hash).decode()}",
        ]
        if self.mode == "full":
            out.append(
                f"OK  all {self.event_count} events hash to the signed root (indices 0..{self.tree_size - 1}"
                " contiguous, none missing, none reordered)"
            )
        else:
            out.append(f"OK  {self.event_count} selected events, each with an inclusion proof against the signed root")
        if self.previous_size is not None:
            out.append(f"OK  previous checkpoint (size {self.previous_size}): {self.previous_checked}")
        if self.first_time:
            out.append(f"    event times {self.first_time} .. {self.last_time}")
        for action, count in sorted(self.actions.items()):
            out.append(f"    {action}: {count}")
        return out


def _split_line(line: bytes, line_number: int) -> tuple[bytes, bytes]:
    if not line.startswith(INDEX_PREFIX) or not line.endswith(b"}\n"):
        raise BundleMalformed(f"events.jsonl line {line_number} is not an index/entry record")
    mark = line.find(ENTRY_MARK)
    if mark < 0:
        raise BundleMalformed(f"events.jsonl line {line_number} has no entry")
    return line[:mark], line[mark + len(ENTRY_MARK) : -2]


def _check_event_shape(entry: bytes, index: int) -> dict[str, Any]:
    try:
        data = json.loads(entry)
    except ValueError as exc:
        raise InvalidAuditEvent(f"event {index} is not JSON: {exc}") from exc
    error = event_shape_error(data, index)
    if error is not None:
        raise error
    return cast(dict[str, Any], data)


def verify_bundle(
    bundle: Path,
    *,
    trusted_key: VerifierKey,
    previous_checkpoint: str | None = None,
    strict: bool = False,
    workers: int = 1,
) -> BundleReport:
    """Verify a bundle offline against ``trusted_key``; raise an ``AuditError`` naming what failed.

    ``previous_checkpoint`` is a signed checkpoint the auditor kept from an earlier visit: the
    bundle must extend it (not truncated, not forked). ``strict`` also parses every event fully
    and insists on canonical form (slower). ``workers`` > 1 checks and hashes lines in that
    many forked processes (for the CLI; do not fork inside a threaded server).
    """
    with _members(Path(bundle)) as members:
        try:
            manifest = json.loads(_read_text(members, "manifest.json"))
        except ValueError as exc:
            raise BundleMalformed(f"manifest.json is not JSON: {exc}") from exc
        if (
            not isinstance(manifest, dict)
            or manifest.get("format") != FORMAT
            or manifest.get("version") != FORMAT_VERSION
        ):
            raise BundleMalformed(f"not a {FORMAT} version {FORMAT_VERSION} bundle")
        mode = manifest.get("mode")
        if mode not in MODES:
            raise BundleMalformed(f"unknown bundle mode {mode!r}")
        bundle_key = _read_text(members, "public_key").strip()
        if bundle_key != trusted_key.encode():
            raise CheckpointSignatureInvalid(
                f"bundle is signed for key {bundle_key[:80]!r}, not the trusted key {trusted_key.encode()!r}"
            )
        checkpoint = open_checkpoint(_read_text(members, "checkpoint"), verifier=trusted_key)
        if manifest.get("origin") != checkpoint.origin or manifest.get("tree_size") != checkpoint.size:
            raise BundleMalformed("manifest origin/tree size disagree with the signed checkpoint")
        previous = None
        if previous_checkpoint is not None:
            previous = open_checkpoint(previous_checkpoint, verifier=trusted_key, origin=checkpoint.origin)
            if previous.size > checkpoint.size:
                raise TruncatedLog(
                    f"log truncated: the previous checkpoint has {previous.size} entries, this bundle's {checkpoint.size}"
                )
            if previous.size == checkpoint.size and previous.root_hash != checkpoint.root_hash:
                raise ForkedCheckpoint(
                    f"forked log: two signed checkpoints of size {previous.size} with different roots"
                )
        report = BundleReport(
            origin=checkpoint.origin,
            mode=mode,
            tree_size=checkpoint.size,
            root_hash=checkpoint.root_hash,
            key=f"{trusted_key.name} ({trusted_key.key_id.hex()})",
            event_count=0,
        )
        with members.open("events.jsonl") as events:
            if mode == "full":
                source = members.locate("events.jsonl") if workers > 1 else None
                _verify_full(events, checkpoint, previous, report, strict, workers, source)
            else:
                _verify_selected(events, checkpoint, previous, report, strict)
        if manifest.get("event_count") != report.event_count:
            raise BundleMalformed(
                f"manifest lists {manifest.get('event_count')} events, events.jsonl has {report.event_count}"
            )
        return report


def _note_event(
    report: BundleReport, actions: Counter[str], data: dict[str, Any], entry: bytes, strict: bool, index: int
) -> None:
    if strict:
        try:
            AuditEvent.from_canonical_bytes(entry)
        except AuditError as exc:
            raise InvalidAuditEvent(f"event {index}: {exc}") from exc
    actions[data["action"]] += 1
    moment = data["time"]
    if isinstance(moment, str):
        if report.first_time is None or moment < report.first_time:
            report.first_time = moment
        if report.last_time is None or moment > report.last_time:
            report.last_time = moment


def _verify_full(
    events: IO[bytes],
    checkpoint: Checkpoint,
    previous: Checkpoint | None,
    report: BundleReport,
    strict: bool,
    workers: int,
    source: MemberLocation | None,
) -> None:
    # Lines are checked and hashed chunk by chunk; the leaf hashes are folded into the compact
    # range here, in order, which is the sequential part. With workers > 1 and a seekable file,
    # each worker reads its own byte range, so only leaf hashes cross process boundaries.
    stack: list[bytes] = []
    size = 0
    actions: Counter[str] = Counter()
    sha256 = hashlib.sha256
    previous_size = previous.size if previous is not None else -1
    if previous_size == 0:
        report.previous_size, report.previous_checked = 0, "empty, trivially extended"
    pool = None
    results: Iterator[RangeResult]
    if workers > 1 and source is not None:
        import multiprocessing

        pool = multiprocessing.get_context("fork").Pool(workers)
        results = pool.imap(check_range, plan_ranges(source, parts=workers * 4, strict=strict))
    else:
        results = map(check_chunk, ((start, blob, strict) for start, blob in read_chunks(events)))
    try:
        for leaves, chunk_actions, first, last, first_index, count in results:
            if count and first_index != size:
                raise BundleEventOutOfOrder(
                    f"events.jsonl line {size + 1} holds index {first_index}, expected {size}: an event was"
                    " dropped, inserted or reordered"
                )
            if size + count > checkpoint.size:
                raise BundleMalformed(f"bundle has more events than the {checkpoint.size} its checkpoint signs")
            for offset in range(0, 32 * count, 32):
                current = leaves[offset : offset + 32]
                index = size
                while index & 1:
                    current = sha256(b"\x01" + stack.pop() + current).digest()
                    index >>= 1
                stack.append(current)
                size += 1
                if previous is not None and size == previous_size:
                    if CompactRange(size=size, hashes=stack).root() != previous.root_hash:
                        raise ForkedCheckpoint(
                            f"events 0..{size - 1} do not hash to the previous checkpoint's root: the log's"
                            " history was rewritten after that checkpoint was published"
                        )
                    report.previous_size = previous_size
                    report.previous_checked = "this log extends it (same history)"
            actions.update(chunk_actions)
            if first is not None and (report.first_time is None or first < report.first_time):
                report.first_time = first
            if last is not None and (report.last_time is None or last > report.last_time):
                report.last_time = last
    finally:
        if pool is not None:
            pool.terminate()
    if size != checkpoint.size:
        raise TruncatedLog(f"bundle holds {size} events but its checkpoint signs {checkpoint.size}")
    if CompactRange(size=size, hashes=stack).root() != checkpoint.root_hash:
        raise BundleRootMismatch(
            f"the {size} events do not hash to the signed root: an event was edited, replaced or swapped"
        )
    report.event_count = size
    report.actions = dict(actions)


def _verify_selected(
    events: IO[bytes], checkpoint: Checkpoint, previous: Checkpoint | None, report: BundleReport, strict: bool
) -> None:
    actions: Counter[str] = Counter()
    last_index = -1
    count = 0
    for line in events:
        count += 1
        prefix, entry = _split_line(line, count)
        try:
            header = json.loads(prefix + b"}")
            index = header["index"]
            proof = [base64.b64decode(item, validate=True) for item in header["proof"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise BundleMalformed(f"events.jsonl line {count} has a malformed index or proof: {exc}") from exc
        if type(index) is not int or index <= last_index:
            raise BundleEventOutOfOrder(f"events.jsonl line {count} holds index {index!r}, not above {last_index}")
        try:
            verify_inclusion(
                index=index, size=checkpoint.size, leaf=leaf_hash(entry), proof=proof, root=checkpoint.root_hash
            )
        except InclusionProofInvalid as exc:
            raise InclusionProofInvalid(f"event at index {index} (line {count}): {exc}") from exc
        _note_event(report, actions, _check_event_shape(entry, index), entry, strict, index)
        last_index = index
    report.event_count = count
    report.actions = dict(actions)
    if previous is not None:
        report.previous_size = previous.size
        report.previous_checked = (
            "not truncated and not forked at equal size; a selected export carries no"
            " consistency proof (fetch /v1/audit/consistency for one)"
        )


def read_checkpoint_file(path: os.PathLike[str] | str) -> str:
    data = Path(path).read_bytes()
    if len(data) > 1 << 16:
        raise BundleMalformed(f"{path} is too large to be a checkpoint")
    return data.decode("utf-8", errors="strict")
