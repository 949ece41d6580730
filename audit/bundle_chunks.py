"""The per-line work of verifying a ``full`` bundle, done on chunks so it can run in parallel.

A chunk is a run of complete ``events.jsonl`` lines and the leaf index of its first line. The
worker checks each line's index, hashes the entry into its RFC 6962 leaf hash and checks the
event's shape; the caller folds the leaf hashes into the tree in order, which is the only
sequential part.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterator
from typing import IO

from audit.errors import AuditError, BundleEventOutOfOrder, BundleMalformed, InvalidAuditEvent
from audit.events import SCHEMA_VERSION, Action, AuditEvent

INDEX_PREFIX = b'{"index":'
ENTRY_MARK = b',"entry":'
EVENT_KEYS = frozenset(
    {"v", "event_id", "time", "action", "decision", "reason", "actor", "subjects", "digests", "engine", "watermark_id"}
)
# An event that stands for many requests (`request.rate_limited`) has one member more.
AGGREGATED_EVENT_KEYS = EVENT_KEYS | {"aggregate"}
ACTIONS = frozenset(action.value for action in Action)
CHUNK_BYTES = 4 << 20


def read_chunks(events: IO[bytes]) -> Iterator[tuple[int, bytes]]:
    """(first leaf index, bytes of whole lines) from a stream; a last line without newline is kept."""
    start, rest = 0, b""
    while True:
        block = events.read(CHUNK_BYTES)
        if not block:
            break
        block = rest + block
        cut = block.rfind(b"\n") + 1
        rest = block[cut:]
        if cut:
            yield start, block[:cut]
            start += block.count(b"\n", 0, cut)
    if rest:
        yield start, rest


def event_shape_error(data: object, index: int) -> InvalidAuditEvent | None:
    """Why a decoded event does not have the event fields, or None when it has them."""
    if (
        not isinstance(data, dict)
        or (data.keys() != EVENT_KEYS and data.keys() != AGGREGATED_EVENT_KEYS)
        or data["v"] != SCHEMA_VERSION
    ):
        return InvalidAuditEvent(f"event {index} does not have the version {SCHEMA_VERSION} event fields")
    if data["action"] not in ACTIONS:
        return InvalidAuditEvent(f"event {index} has unknown action {data['action']!r:.40}")
    if type(data["time"]) is not str:
        return InvalidAuditEvent(f"event {index} has a malformed time")
    return None


# A byte range of the events file for one worker: (path, member offset, member length, start, end, strict).
RangeTask = tuple[str, int, int, int, int, bool]
# What a worker returns: leaf hashes, action counts, first and last time, first index, count.
RangeResult = tuple[bytes, dict[str, int], str | None, str | None, int | None, int]


def plan_ranges(source: tuple[str, int, int], *, parts: int, strict: bool) -> list[RangeTask]:
    """Split a member of ``length`` bytes at ``offset`` in ``path`` into byte ranges for workers."""
    path, offset, length = source
    step = max(1, -(-length // parts))
    return [(str(path), offset, length, start, min(length, start + step), strict) for start in range(0, length, step)]


def _range_blobs(handle: IO[bytes], offset: int, length: int, start: int, end: int) -> Iterator[bytes]:
    """Blobs of whole lines whose first byte lies in [start, end) of the member."""
    position = start
    if start > 0:
        handle.seek(offset + start - 1)
        if handle.read(1) != b"\n":
            # We are inside a line that belongs to the previous range: skip past it.
            while True:
                piece = handle.readline(1 << 16)
                position += len(piece)
                if not piece or piece.endswith(b"\n") or position >= length:
                    break
    else:
        handle.seek(offset)
    carry = b""
    while position < end:
        want = min(CHUNK_BYTES, length - position - len(carry))
        block = handle.read(want) if want > 0 else b""
        if not block:
            if carry:
                yield carry  # a last line without its newline: check_chunk reports it
            return
        data = carry + block
        cut = data.rfind(b"\n") + 1
        if cut == 0:
            carry = data
            continue
        if position + cut > end:
            # Stop after the line that straddles ``end``; the next range starts with the one after.
            stop = data.find(b"\n", end - position - 1) + 1
            yield data[:stop]
            return
        yield data[:cut]
        carry = data[cut:]
        position += cut


def check_range(task: RangeTask) -> RangeResult:
    """``check_chunk`` over one byte range of the events file, read by the worker itself."""
    path, offset, length, start, end, strict = task
    leaves: list[bytes] = []
    actions: Counter[str] = Counter()
    first: str | None = None
    last: str | None = None
    first_index, count = None, 0
    with open(path, "rb", buffering=1 << 20) as handle:
        for blob in _range_blobs(handle, offset, length, start, end):
            if first_index is None:
                digits = blob[len(INDEX_PREFIX) : blob.find(ENTRY_MARK)]
                if not blob.startswith(INDEX_PREFIX) or not digits.isdigit():
                    raise BundleMalformed(f"events.jsonl has a malformed line at byte {start}")
                first_index = int(digits)
            chunk_leaves, chunk_actions, chunk_first, chunk_last, _, chunk_count = check_chunk(
                (first_index + count, blob, strict)
            )
            leaves.append(chunk_leaves)
            actions.update(chunk_actions)
            if chunk_first is not None and (first is None or chunk_first < first):
                first = chunk_first
            if chunk_last is not None and (last is None or chunk_last > last):
                last = chunk_last
            count += chunk_count
    return b"".join(leaves), dict(actions), first, last, first_index, count


def check_chunk(task: tuple[int, bytes, bool]) -> RangeResult:
    """Leaf hashes (concatenated), action counts, first and last event time, first index, line count."""
    start, blob, strict = task
    lines = blob.split(b"\n")
    if lines[-1]:
        raise BundleMalformed(f"events.jsonl line {start + len(lines)} does not end with a newline")
    lines.pop()
    sha256 = hashlib.sha256
    # raw_decode skips decode()'s whitespace regexes; canonical entries have no whitespace, and
    # the end offset check below still refuses trailing bytes.
    raw_decode = json.JSONDecoder().raw_decode
    prefix_length, mark_length = len(INDEX_PREFIX), len(ENTRY_MARK)
    leaves: list[bytes] = []
    actions: Counter[str] = Counter()
    first: str | None = None
    last: str | None = None
    index = start
    for line in lines:
        if not line.startswith(INDEX_PREFIX) or not line.endswith(b"}"):
            raise BundleMalformed(f"events.jsonl line {index + 1} is not an index/entry record")
        mark = line.find(ENTRY_MARK, prefix_length)
        if mark < 0:
            raise BundleMalformed(f"events.jsonl line {index + 1} has no entry")
        if line[prefix_length:mark] != b"%d" % index:
            raise BundleEventOutOfOrder(
                f"events.jsonl line {index + 1} holds index {line[prefix_length:mark][:20].decode(errors='replace')},"
                f" expected {index}: an event was dropped, inserted or reordered"
            )
        entry = line[mark + mark_length : -1]
        leaves.append(sha256(b"\x00" + entry).digest())
        try:
            text = entry.decode()
            data, end = raw_decode(text)
        except ValueError as exc:
            raise InvalidAuditEvent(f"event {index} is not JSON: {exc}") from None
        if end != len(text):
            raise InvalidAuditEvent(f"event {index} has bytes after its JSON object")
        if (
            type(data) is not dict
            or (data.keys() != EVENT_KEYS and data.keys() != AGGREGATED_EVENT_KEYS)
            or data["v"] != SCHEMA_VERSION
            or data["action"] not in ACTIONS
            or type(data["time"]) is not str
        ):
            # the inline test above is the fast path; the function says which field is wrong
            raise event_shape_error(data, index) or InvalidAuditEvent(f"event {index} is malformed")
        if strict:
            try:
                AuditEvent.from_canonical_bytes(entry)
            except AuditError as exc:
                raise InvalidAuditEvent(f"event {index}: {exc}") from None
        actions[data["action"]] += 1
        moment = data["time"]
        if first is None or moment < first:
            first = moment
        if last is None or moment > last:
            last = moment
        index += 1
    return b"".join(leaves), dict(actions), first, last, start, len(lines)
