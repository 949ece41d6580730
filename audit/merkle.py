"""RFC 6962 / RFC 9162 Merkle tree hashing, proofs and their verification.

leaf = SHA-256(0x00 || entry), node = SHA-256(0x01 || left || right), the empty tree hashes to
SHA-256(""). Trees are described by their *perfect* subtrees: the node at ``(level, index)``
covers leaves ``[index * 2**level, (index + 1) * 2**level)``. Storing only those nodes is enough
to answer every proof, because any other subtree hash the RFC algorithms need is a fold of the
perfect subtrees that tile its range. ``CompactRange`` appends leaves with O(log n) state,
which is what the integrator and the streaming bundle verifier use.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence

from audit.errors import ConsistencyProofInvalid, InclusionProofInvalid, ProofUnavailable

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

_sha256 = hashlib.sha256

# Returns the hash of the perfect subtree at (level, index); raises ProofUnavailable if unknown.
NodeSource = Callable[[int, int], bytes]


def leaf_hash(entry: bytes) -> bytes:
    return _sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return _sha256(b"\x01" + left + right).digest()


class CompactRange:
    """The perfect-subtree hashes on the right border of a tree of ``size`` leaves.

    ``append`` returns the perfect nodes it created as ``(level, index, hash)`` so a store can
    persist them; ``root()`` folds the border into the tree head.
    """

    __slots__ = ("_hashes", "size")

    def __init__(self, *, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        if size < 0 or len(hashes) != bin(size).count("1"):
            raise ValueError(f"a compact range of size {size} has {bin(size).count('1')} hashes, got {len(hashes)}")
        self.size = size
        # Largest (leftmost) subtree first, matching the set bits of size from the top.
        self._hashes = list(hashes)

    @staticmethod
    def border(size: int) -> list[tuple[int, int]]:
        """(level, index) of the perfect subtrees that tile [0, size), left to right."""
        nodes = []
        start = 0
        for level in range(size.bit_length() - 1, -1, -1):
            if size >> level & 1:
                nodes.append((level, start >> level))
                start += 1 << level
        return nodes

    def append(self, leaf: bytes) -> list[tuple[int, int, bytes]]:
        created = [(0, self.size, leaf)]
        hashes = self._hashes
        current = leaf
        index = self.size
        level = 0
        while index & 1:
            current = node_hash(hashes.pop(), current)
            index >>= 1
            level += 1
            created.append((level, index, current))
        hashes.append(current)
        self.size += 1
        return created

    def append_fast(self, leaf: bytes) -> None:
        """``append`` without reporting the created nodes: the verifier's hot loop."""
        hashes = self._hashes
        index = self.size
        current = leaf
        while index & 1:
            current = _sha256(b"\x01" + hashes.pop() + current).digest()
            index >>= 1
        hashes.append(current)
        self.size += 1

    def hashes(self) -> list[bytes]:
        return list(self._hashes)

    def root(self) -> bytes:
        if not self._hashes:
            return EMPTY_ROOT
        current = self._hashes[-1]
        for left in reversed(self._hashes[:-1]):
            current = node_hash(left, current)
        return current


def root_of(entries_or_leaves: Iterable[bytes], *, hashed: bool = False) -> bytes:
    """Tree head of a sequence of entries (or of leaf hashes when ``hashed``)."""
    compact = CompactRange()
    for item in entries_or_leaves:
        compact.append_fast(item if hashed else leaf_hash(item))
    return compact.root()


class MemoryTree:
    """All perfect-subtree hashes of a log held in memory: for tests and for export tooling."""

    def __init__(self) -> None:
        self._levels: list[list[bytes]] = [[]]
        self._compact = CompactRange()

    @property
    def size(self) -> int:
        return self._compact.size

    def append_entry(self, entry: bytes) -> int:
        return self.append_leaf(leaf_hash(entry))

    def append_leaf(self, leaf: bytes) -> int:
        for level, index, digest in self._compact.append(leaf):
            if level == len(self._levels):
                self._levels.append([])
            if len(self._levels[level]) != index:
                raise AssertionError("perfect nodes must be created in index order")
            self._levels[level].append(digest)
        return self.size - 1

    def node(self, level: int, index: int) -> bytes:
        try:
            return self._levels[level][index]
        except IndexError:
            raise ProofUnavailable(f"no perfect subtree at level {level}, index {index}") from None

    def root(self, size: int | None = None) -> bytes:
        return subtree_root(self.node, 0, self.size if size is None else size)


def subtree_root(node: NodeSource, start: int, end: int) -> bytes:
    """MTH(D[start:end]) for a range the RFC algorithms use (start aligned to the split)."""
    if end == start:
        return EMPTY_ROOT
    tiles = []
    position = start
    while position < end:
        # The largest aligned perfect subtree starting at ``position`` that fits in the range.
        level = (position & -position).bit_length() - 1 if position else (end - position).bit_length() - 1
        while position + (1 << level) > end:
            level -= 1
        tiles.append(node(level, position >> level))
        position += 1 << level
    current = tiles[-1]
    for left in reversed(tiles[:-1]):
        current = node_hash(left, current)
    return current


def _largest_power_of_two_below(n: int) -> int:
    return 1 << ((n - 1).bit_length() - 1)


def inclusion_proof(node: NodeSource, *, index: int, size: int) -> list[bytes]:
    """RFC 6962 PATH(index, D[0:size]) from stored perfect subtrees."""
    if not 0 <= index < size:
        raise ProofUnavailable(f"leaf {index} is not in a tree of size {size}")
    proof: list[bytes] = []
    start, end, target = 0, size, index
    while end - start > 1:
        k = _largest_power_of_two_below(end - start)
        if target - start < k:
            proof.append(subtree_root(node, start + k, end))
            end = start + k
        else:
            proof.append(subtree_root(node, start, start + k))
            start = start + k
    proof.reverse()
    return proof


def consistency_proof(node: NodeSource, *, old_size: int, new_size: int) -> list[bytes]:
    """RFC 6962 PROOF(old_size, D[0:new_size]) from stored perfect subtrees."""
    if not 0 <= old_size <= new_size:
        raise ProofUnavailable(f"no consistency proof from size {old_size} to {new_size}")
    if old_size in (0, new_size):
        return []
    proof: list[bytes] = []
    start, end, m, complete = 0, new_size, old_size, True
    while True:
        n = end - start
        if m == n:
            if not complete:
                proof.append(subtree_root(node, start, end))
            break
        k = _largest_power_of_two_below(n)
        if m <= k:
            proof.append(subtree_root(node, start + k, end))
            end = start + k
        else:
            proof.append(subtree_root(node, start, start + k))
            start, m, complete = start + k, m - k, False
    proof.reverse()
    return proof


def _check_hash(value: bytes, what: str, error: type[Exception]) -> None:
    if not isinstance(value, bytes) or len(value) != HASH_SIZE:
        raise error(f"{what} is not a {HASH_SIZE}-byte SHA-256 hash")


def root_from_inclusion_proof(*, index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """RFC 9162 section 2.1.3.2: the root that ``proof`` implies for ``leaf`` at ``index``."""
    if not 0 <= index < size:
        raise InclusionProofInvalid(f"leaf index {index} is outside a tree of size {size}")
    _check_hash(leaf, "leaf hash", InclusionProofInvalid)
    fn, sn, current = index, size - 1, leaf
    for position, sibling in enumerate(proof):
        _check_hash(sibling, f"proof[{position}]", InclusionProofInvalid)
        if sn == 0:
            raise InclusionProofInvalid(f"inclusion proof for leaf {index} has {len(proof) - position} extra hashes")
        if fn & 1 or fn == sn:
            current = node_hash(sibling, current)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            current = node_hash(current, sibling)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise InclusionProofInvalid(f"inclusion proof for leaf {index} in a tree of size {size} is too short")
    return current


def verify_inclusion(*, index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes) -> None:
    """Raise ``InclusionProofInvalid`` unless ``leaf`` is at ``index`` of the tree with ``root``."""
    _check_hash(root, "root", InclusionProofInvalid)
    if root_from_inclusion_proof(index=index, size=size, leaf=leaf, proof=proof) != root:
        raise InclusionProofInvalid(f"leaf {index} is not included in the tree of size {size} with this root")


def verify_consistency(
    *, old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """RFC 9162 section 2.1.4.2; raise ``ConsistencyProofInvalid`` unless the trees are consistent."""
    if not 0 <= old_size <= new_size:
        raise ConsistencyProofInvalid(f"tree of size {new_size} cannot extend one of size {old_size}")
    _check_hash(old_root, "old root", ConsistencyProofInvalid)
    _check_hash(new_root, "new root", ConsistencyProofInvalid)
    if old_size == new_size:
        if proof:
            raise ConsistencyProofInvalid("a proof between equal sizes must be empty")
        if old_root != new_root:
            raise ConsistencyProofInvalid(f"two different roots for the same size {old_size}: a fork")
        return
    if old_size == 0:
        if proof:
            raise ConsistencyProofInvalid("a proof from the empty tree must be empty")
        return
    if not proof:
        raise ConsistencyProofInvalid(f"empty consistency proof from size {old_size} to {new_size}")
    for position, item in enumerate(proof):
        _check_hash(item, f"proof[{position}]", ConsistencyProofInvalid)
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    old_hash = new_hash = path[0]
    for item in path[1:]:
        if sn == 0:
            raise ConsistencyProofInvalid(f"consistency proof {old_size}->{new_size} has extra hashes")
        if fn & 1 or fn == sn:
            old_hash = node_hash(item, old_hash)
            new_hash = node_hash(item, new_hash)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            new_hash = node_hash(new_hash, item)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ConsistencyProofInvalid(f"consistency proof {old_size}->{new_size} is too short")
    if old_hash != old_root:
        raise ConsistencyProofInvalid(f"consistency proof does not reproduce the root of size {old_size}")
    if new_hash != new_root:
        raise ConsistencyProofInvalid(f"consistency proof does not reproduce the root of size {new_size}")
