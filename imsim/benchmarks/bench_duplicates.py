"""find_duplicates' search step at scale: random 64-bit hashes with planted near-copies.

Each of BENCH_DUP_GROUPS originals gets 1-3 copies with 0-4 flipped bits; the rest are distinct
random hashes. Prints the time of `search_pairs` (exact BFlat up to 200,000 hashes, BIVF above)
and the share of planted pairs found at max_distance 4 (the same code path as the command line;
feature extraction is benchmarked in bench_extract). Sizes: BENCH_DUP_N (default 200,000; the
issue's scale: 1000000), BENCH_DUP_GROUPS (default 2,000).
"""

from __future__ import annotations

import os
import time

import numpy as np

from fast_search.duplicates import connected_groups, search_pairs


def planted(n: int, groups: int, seed: int = 0) -> tuple[np.ndarray, set[tuple[int, int]]]:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n, 8), dtype=np.uint8)
    truth, row = set(), n - 1
    for g in range(groups):
        for _ in range(rng.integers(1, 4)):
            copy = np.unpackbits(x[g])
            copy[rng.choice(64, size=rng.integers(0, 5), replace=False)] ^= 1
            x[row] = np.packbits(copy)
            truth.add((g, row))
            row -= 1
    return x, truth


def main() -> dict:
    n = int(os.environ.get("BENCH_DUP_N", 200_000))
    groups = int(os.environ.get("BENCH_DUP_GROUPS", 2_000))
    x, truth = planted(n, groups)
    start = time.perf_counter()
    pairs, index = search_pairs(x, True, max_distance=4)
    elapsed = time.perf_counter() - start
    found = {(i, j) for i, j, _ in pairs}
    recall = len(truth & found) / len(truth)
    n_groups = len(connected_groups(n, pairs))
    print(f"search_pairs on {n:,} 64-bit hashes ({index}): {elapsed:.1f} s ({n / elapsed:,.0f} images/s); "
          f"{len(truth):,} planted pairs, {recall:.4f} found; {len(pairs):,} pairs, {n_groups:,} groups")
    return {"n": n, "groups_planted": groups, "index": str(index), "search_s": elapsed, "planted_pairs": len(truth),
            "planted_found": recall, "pairs": len(pairs), "groups": n_groups}


if __name__ == "__main__":
    main()
