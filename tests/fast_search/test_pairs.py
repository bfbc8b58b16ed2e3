"""Every pair within the threshold: each search path equals brute force, ties at the threshold included."""

from __future__ import annotations

import numpy as np
import pytest

from fast_search import pairs as P
from fast_search.duplicates import search_pairs


def _as_set(i, j, d):
    return {(int(a), int(b), float(c)) for a, b, c in zip(i, j, d, strict=True)}


def _planted_codes(n: int, nbytes: int, seed: int = 0) -> np.ndarray:
    """Random codes where a third are copies of others with 0-6 flipped bits: many pairs at every distance."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n, nbytes), dtype=np.uint8)
    for row in range(n // 3, n):
        if rng.random() < 0.5:
            bits = np.unpackbits(x[rng.integers(0, n // 3)])
            bits[rng.choice(len(bits), rng.integers(0, 7), replace=False)] ^= 1
            x[row] = np.packbits(bits)
    return x


@pytest.mark.parametrize("nbytes,t", [(8, 0), (8, 3), (8, 4), (4, 2), (32, 9)])
def test_hamming_join_equals_brute_force(nbytes, t):
    x = _planted_codes(600, nbytes)
    expected = _as_set(*P.brute_force_pairs(x, True, t))
    assert any(d == t for _, _, d in expected)  # ties at the threshold are present ...
    assert _as_set(*P.hamming_join(x, t)) == expected  # ... and kept
    i, j, d, how = P.binary_pairs(x, t)
    assert how == "BFlat" and _as_set(i, j, d) == expected  # small n: faiss range search


def test_binary_pairs_picks_the_join_at_scale_and_stays_exact(monkeypatch):
    monkeypatch.setattr(P, "BRUTE_FORCE_PAIRS", 1000)
    x = _planted_codes(3000, 8, seed=1)
    i, j, d, how = P.binary_pairs(x, 4)
    assert how == "hamming-join5"
    assert _as_set(i, j, d) == _as_set(*P.brute_force_pairs(x, True, 4))
    i2, j2, d2, how = P.binary_pairs(x, 24)  # too loose for the join: 25 chunks of 2-3 bits
    assert how == "BFlat" and _as_set(i2, j2, d2) == _as_set(*P.brute_force_pairs(x, True, 24))


def test_more_matches_than_any_neighbour_count_are_all_returned():
    x = np.zeros((80, 8), np.uint8)  # 80 identical hashes: 3,160 pairs, far beyond 32 neighbours
    pairs, _ = search_pairs(x, True, 0)
    assert len(pairs) == 80 * 79 // 2


def test_float_pairs_equal_brute_force_with_ties():
    rng = np.random.default_rng(0)
    base = rng.standard_normal((200, 16)).astype(np.float32)
    copies = base[:100] + 0.15 * rng.standard_normal((100, 16)).astype(np.float32)
    tie = np.zeros((2, 16), np.float32)
    tie[0, 0], tie[1, :2] = 1, (0.6, 0.8)  # cosine 0.6: distance 0.4, exactly the threshold
    x = np.vstack([base, copies, tie])
    for t in (0.05, 0.4):
        expected = P.brute_force_pairs(x, False, t)
        got = P.float_pairs(x, t)
        assert {(a, b) for a, b, _ in _as_set(*got)} == {(a, b) for a, b, _ in _as_set(*expected)}
        np.testing.assert_allclose(np.sort(got[2]), np.sort(expected[2]), atol=1e-5)
    assert (300, 301) in {(int(a), int(b)) for a, b in zip(*P.float_pairs(x, 0.4)[:2], strict=True)}


def test_pairs_do_not_depend_on_row_order():
    x = _planted_codes(500, 8, seed=2)
    perm = np.random.default_rng(3).permutation(len(x))
    pairs, _ = search_pairs(x, True, 4)
    shuffled, _ = search_pairs(x[perm], True, 4)
    back = {(min(perm[i], perm[j]), max(perm[i], perm[j]), d) for i, j, d in shuffled}
    assert back == set(pairs)


def test_an_ivf_index_can_be_asked_for():
    x = _planted_codes(2000, 8, seed=4)
    pairs, how = search_pairs(x, True, 3, index="BIVF16", nprobe=16)
    assert how == "BIVF16"
    assert {(i, j) for i, j, _ in pairs} == {(int(a), int(b)) for a, b in zip(*P.brute_force_pairs(x, True, 3)[:2], strict=True)}
