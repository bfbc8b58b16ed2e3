"""find_duplicates' search step at scale: random 64-bit hashes with planted near-copies, against the former k-NN search.

Each of BENCH_DUP_GROUPS originals gets 1-3 copies with 0-4 flipped bits; the rest are distinct
random hashes. Times `search_pairs` at max_distance 4 (every pair within the threshold: the exact
Hamming join above 10,000 hashes) and, in the same run, the search it replaced (each hash's 32
nearest neighbours through BFlat up to 200,000 hashes, BIVF<4 sqrt(n)> nprobe 32 above), and the
share of planted pairs each finds. Sizes: BENCH_DUP_N (default 200,000; the issue's scale:
1000000), BENCH_DUP_GROUPS (default 2,000); BENCH_DUP_BASELINE=0 skips the former search.
Feature extraction is benchmarked in bench_extract.
"""

from __future__ import annotations

import math
import os
import resource
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


def former_knn_pairs(x: np.ndarray, max_distance: int, k: int = 32) -> tuple[set[tuple[int, int]], str]:
    """The search find_duplicates used before: k nearest neighbours per hash, pairs within the threshold."""
    from fast_search.index import FaissIndex

    n = len(x)
    if n <= 200_000:
        factory, nprobe = "BFlat", None
    else:
        factory, nprobe = f"BIVF{1 << round(math.log2(4 * math.sqrt(n)))}", 32
    train = x if n <= 262_144 else x[np.sort(np.random.default_rng(0).choice(n, 262_144, replace=False))]
    index = FaissIndex(factory, "hamming", binary=True).fit(train).add(x)
    if nprobe:
        index.set_param("nprobe", nprobe)
    D, I = index.search(x, k + 1)  # noqa: E741
    rows, cols = np.nonzero((D <= max_distance) & (I >= 0))
    found = {(min(r, int(I[r, c])), max(r, int(I[r, c]))) for r, c in zip(rows.tolist(), cols.tolist(), strict=True)
             if int(I[r, c]) != r}
    return found, factory + (f" nprobe {nprobe}" if nprobe else "")


def main() -> dict:
    n = int(os.environ.get("BENCH_DUP_N", 200_000))
    groups = int(os.environ.get("BENCH_DUP_GROUPS", 2_000))
    x, truth = planted(n, groups)
    start = time.perf_counter()
    pairs, index = search_pairs(x, True, max_distance=4)
    elapsed = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    found = {(i, j) for i, j, _ in pairs}
    recall = len(truth & found) / len(truth)
    n_groups = len(connected_groups(n, pairs))
    print(f"search_pairs on {n:,} 64-bit hashes ({index}, exact): {elapsed:.1f} s ({n / elapsed:,.0f} images/s), "
          f"peak RSS {peak:,.0f} MiB; {len(truth):,} planted pairs, {recall:.4f} found; {len(pairs):,} pairs, "
          f"{n_groups:,} groups")
    out = {"n": n, "groups_planted": groups, "index": str(index), "search_s": elapsed, "peak_rss_mib": peak,
           "planted_pairs": len(truth), "planted_found": recall, "pairs": len(pairs), "groups": n_groups}
    if os.environ.get("BENCH_DUP_BASELINE", "1") != "0":
        start = time.perf_counter()
        old, how = former_knn_pairs(x, 4)
        old_elapsed = time.perf_counter() - start
        print(f"former 32-NN search ({how}): {old_elapsed:.1f} s; {len(truth & old) / len(truth):.4f} of the planted "
              f"pairs, {len(old):,} pairs ({len(found - old):,} of the exact pairs missed); "
              f"exact search {old_elapsed / elapsed:.2f}x its speed")
        out.update(former=how, former_s=old_elapsed, former_planted_found=len(truth & old) / len(truth),
                   former_missed=len(found - old))
    return out


if __name__ == "__main__":
    main()
