"""Known-answer tests: RFC 6962 hashing, roots, inclusion and consistency proofs.

The vectors are transparency-dev/merkle's (rfc6962/rfc6962_test.go and proof/verify_test.go),
copied verbatim; the corrupted-proof probes follow that file's corruptInclusionProof and
corruptConsistencyProof.
"""

from __future__ import annotations

import hashlib

import pytest

from audit.errors import ConsistencyProofInvalid, InclusionProofInvalid, ProofUnavailable
from audit.merkle import (
    EMPTY_ROOT,
    CompactRange,
    MemoryTree,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_of,
    verify_consistency,
    verify_inclusion,
)

h = bytes.fromhex

LEAVES = [
    h(""),
    h("00"),
    h("10"),
    h("2021"),
    h("3031"),
    h("40414243"),
    h("5051525354555657"),
    h("606162636465666768696a6b6c6d6e6f"),
]
ROOTS = [
    h(x)
    for x in (
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    )
]
# (1-based leaf, tree size, proof) as in transparency-dev's inclusionProofs
INCLUSION = [
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (3, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        2,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]
CONSISTENCY = [
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        6,
        7,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
]
SOME_HASH = h("abacaba000000000000000000000000000000000000000000060061e00123456")


@pytest.fixture(scope="module")
def tree() -> MemoryTree:
    built = MemoryTree()
    for entry in LEAVES:
        built.append_entry(entry)
    return built


def test_rfc6962_hasher_vectors():
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert leaf_hash(b"").hex() == "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    assert leaf_hash(b"L123456").hex() == "395aa064aa4c29f7010acfe3f25db9485bbd4b91897b6ad7ad547639252b4d56"
    assert node_hash(b"N123", b"N456").hex() == "aa217fe888e47007fa15edab33c2b492a722cb106c64667fc2b044444de66bbb"


def test_leaf_and_node_hashes_are_domain_separated():
    a, b = leaf_hash(b"Hello"), leaf_hash(b"World")
    assert node_hash(a, b) != leaf_hash(a + b)
    assert node_hash(a, b) != node_hash(b, a)


@pytest.mark.parametrize("size", range(1, 9))
def test_roots_match_vectors(tree, size):
    assert tree.root(size) == ROOTS[size - 1]
    assert root_of(LEAVES[:size]) == ROOTS[size - 1]


def test_empty_tree_root():
    assert root_of([]) == EMPTY_ROOT
    assert CompactRange().root() == EMPTY_ROOT


@pytest.mark.parametrize("leaf, size, proof", INCLUSION)
def test_inclusion_proof_generation_and_verification(tree, leaf, size, proof):
    expected = [h(x) for x in proof]
    assert inclusion_proof(tree.node, index=leaf - 1, size=size) == expected
    verify_inclusion(index=leaf - 1, size=size, leaf=leaf_hash(LEAVES[leaf - 1]), proof=expected, root=ROOTS[size - 1])


def _corrupt_inclusion(index, size, proof, root, leaf):
    probes = [
        (index - 1, size, root, leaf, proof),
        (index + 1, size, root, leaf, proof),
        (index ^ 2, size, root, leaf, proof),
        (index, size * 2, root, leaf, proof),
        (index, size // 2, root, leaf, proof),
        (index, size, root, b"WrongLeaf", proof),
        (index, size, EMPTY_ROOT, leaf, proof),
        (index, size, SOME_HASH, leaf, proof),
        (index, size, root, leaf, proof + [b""]),
        (index, size, root, leaf, proof + [root]),
        (index, size, root, leaf, [b""] + proof),
        (index, size, root, leaf, [root] + proof),
    ]
    for position in range(len(proof)):
        flipped = list(proof)
        flipped[position] = bytes([flipped[position][0] ^ 8]) + flipped[position][1:]
        probes.append((index, size, root, leaf, flipped))
    if proof:
        probes.append((index, size, root, leaf, proof[:-1]))
    if len(proof) > 1:
        probes.append((index, size, root, leaf, [proof[0], SOME_HASH] + proof[1:]))
    return probes


@pytest.mark.parametrize("leaf, size, proof", INCLUSION[1:])
def test_corrupted_inclusion_proofs_are_refused(leaf, size, proof):
    proof = [h(x) for x in proof]
    for probe_index, probe_size, root, leaf_value, probe in _corrupt_inclusion(
        leaf - 1, size, proof, ROOTS[size - 1], leaf_hash(LEAVES[leaf - 1])
    ):
        with pytest.raises(InclusionProofInvalid):
            verify_inclusion(index=probe_index, size=probe_size, leaf=leaf_value, proof=probe, root=root)


@pytest.mark.parametrize("old, new, proof", CONSISTENCY)
def test_consistency_proof_generation_and_verification(tree, old, new, proof):
    expected = [h(x) for x in proof]
    assert consistency_proof(tree.node, old_size=old, new_size=new) == expected
    verify_consistency(old_size=old, new_size=new, old_root=ROOTS[old - 1], new_root=ROOTS[new - 1], proof=expected)


@pytest.mark.parametrize("old, new, proof", [c for c in CONSISTENCY if c[2]])
def test_corrupted_consistency_proofs_are_refused(old, new, proof):
    proof = [h(x) for x in proof]
    r1, r2 = ROOTS[old - 1], ROOTS[new - 1]
    probes = [
        (old - 1, new, r1, r2, proof),
        (old + 1, new, r1, r2, proof),
        (old ^ 2, new, r1, r2, proof),
        (old, new * 2, r1, r2, proof),
        (old, new // 2, r1, r2, proof),
        (old, new, b"WrongRoot", r2, proof),
        (old, new, r1, b"WrongRoot", proof),
        (old, new, r2, r1, proof),
        (old, new, r1, r2, []),
        (old, new, r1, r2, proof + [b""]),
        (old, new, r1, r2, proof + [r1]),
        (old, new, r1, r2, proof + [r2]),
        (old, new, r1, r2, [b""] + proof),
        (old, new, r1, r2, [r1] + proof),
        (old, new, r1, r2, [r2] + proof),
        (old, new, r1, r2, [proof[0]] + proof),
        (old, new, r1, r2, proof[:-1]),
    ]
    for position in range(len(proof)):
        flipped = list(proof)
        flipped[position] = bytes([flipped[position][0] ^ 16]) + flipped[position][1:]
        probes.append((old, new, r1, r2, flipped))
    for o, n, a, b, p in probes:
        with pytest.raises(ConsistencyProofInvalid):
            verify_consistency(old_size=o, new_size=n, old_root=a, new_root=b, proof=p)


def test_consistency_edge_cases_from_vectors():
    empty, one = EMPTY_ROOT, SOME_HASH
    verify_consistency(old_size=0, new_size=0, old_root=one, new_root=one, proof=[])
    verify_consistency(old_size=0, new_size=1, old_root=empty, new_root=one, proof=[])
    verify_consistency(old_size=1, new_size=1, old_root=one, new_root=one, proof=[])
    for old, new, a, b, proof in [
        (0, 0, empty, one, []),
        (1, 1, empty, one, []),
        (1, 0, one, one, []),
        (2, 1, one, one, []),
        (1, 2, one, empty, []),
        (0, 0, empty, empty, [empty]),
        (0, 1, empty, empty, [empty]),
        (1, 1, empty, empty, [empty]),
    ]:
        with pytest.raises(ConsistencyProofInvalid):
            verify_consistency(old_size=old, new_size=new, old_root=a, new_root=b, proof=proof)


def test_proofs_round_trip_on_every_index_and_size_of_a_larger_tree():
    tree = MemoryTree()
    entries = [hashlib.sha256(str(i).encode()).digest() for i in range(70)]
    roots = []
    for entry in entries:
        tree.append_entry(entry)
        roots.append(tree.root())
    for size in range(1, 71):
        assert root_of(entries[:size]) == roots[size - 1]
        for index in range(size):
            proof = inclusion_proof(tree.node, index=index, size=size)
            verify_inclusion(index=index, size=size, leaf=leaf_hash(entries[index]), proof=proof, root=roots[size - 1])
        for old in range(0, size + 1, 3):
            proof = consistency_proof(tree.node, old_size=old, new_size=size)
            old_root = roots[old - 1] if old else EMPTY_ROOT
            verify_consistency(old_size=old, new_size=size, old_root=old_root, new_root=roots[size - 1], proof=proof)


def test_proof_for_a_different_entry_is_refused():
    tree = MemoryTree()
    for i in range(11):
        tree.append_entry(b"event %d" % i)
    proof_for_3 = inclusion_proof(tree.node, index=3, size=11)
    with pytest.raises(InclusionProofInvalid):
        verify_inclusion(index=3, size=11, leaf=leaf_hash(b"event 4"), proof=proof_for_3, root=tree.root())
    with pytest.raises(InclusionProofInvalid):
        verify_inclusion(index=4, size=11, leaf=leaf_hash(b"event 4"), proof=proof_for_3, root=tree.root())


def test_proofs_outside_the_tree_are_unavailable():
    tree = MemoryTree()
    tree.append_entry(b"x")
    with pytest.raises(ProofUnavailable):
        inclusion_proof(tree.node, index=1, size=1)
    with pytest.raises(ProofUnavailable):
        consistency_proof(tree.node, old_size=2, new_size=1)
