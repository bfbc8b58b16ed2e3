# ruff: noqa: E741
"""``--indexes auto``: a faiss factory string chosen for N, d and a memory budget, then tuned to a latency.

The choice follows autofaiss's rules (criteo/autofaiss ``get_optimal_index_keys_v2``, its first
key), each candidate checked against the budget with the size estimates below:

1. N < 1,000: ``Flat``; N < 10,000: ``HNSW15`` (quantizers need more training vectors);
2. ``HNSW{M}`` when M = floor((budget / 4N - d) / 2) >= 8 (M capped at 32): the best speed/recall;
3. N < 1M: ``IVF{k},Flat`` with k the power of two nearest 4 sqrt(N), if it fits;
4. else (N >= 10,000) ``OPQ{m}_{d'},IVF{k}_HNSW32,PQ{m}x8`` with the largest m < d of 256, 128, 64,
   48, 32, 24, 16, 8, 4 that fits (m need not divide d: OPQ rotates into d' = (min(d // m, 6) + 1) m
   dimensions, autofaiss's choice); k = 16,384 below 10M vectors, 65,536 below 300M, 131,072 beyond
   (an HNSW over the centroids from 1,000 lists).

Nothing fits: `BudgetError` names the smallest index and the budget it needs. Where the string
differs from autofaiss's (``tests/fast_search/autofaiss_keys.json`` lists cases with both), it is
for one of `DIFFERENCES`. Then `tune` binary searches the largest nprobe (IVF) or efSearch (HNSW)
whose latency stays under ``max_query_ms``, measured as autofaiss does: one query per search call
on held-out database vectors (`measure_ms`), not a batch divided by its size. An index that is
slower than exact search even at its fastest setting is replaced by ``Flat`` when Flat fits the
budget (exact search has the best recall, so a slower index is never worth it); the experiment
records both steps.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

#: PQ code sizes tried, largest first (bytes per vector): autofaiss's list.
PQ_SIZES = (256, 128, 64, 48, 32, 24, 16, 8, 4)
#: Why a choice may differ from autofaiss's ``get_optimal_index_keys_v2(N, d, budget)[0]``.
DIFFERENCES = {
    "units": "budget strings: we read GB as 1e9 bytes (SI; GiB = 2**30), autofaiss as 2**30 (equal in bytes)",
    "full_size": "we check a PQ index's whole size (codes, ids, centroids, their HNSW graph, OPQ matrix) against "
                 "the budget; autofaiss checks codes and ids only, so its choice can exceed the budget",
    "ivf_ids": "we count the int64 id an IVF-Flat list stores beside each vector; autofaiss does not",
    "min_per_list": "at most N / 39 lists (faiss's minimum of 39 training vectors per centroid); autofaiss takes "
                    "the power of two nearest 4 sqrt(N) even below 24,336 vectors",
    "small_budget": "below 10,000 vectors autofaiss returns Flat / HNSW15 whatever the budget; we check it",
}
ID_BYTES = 8  # an IVF list stores an int64 id beside each code
_UNITS = {"": 1, "B": 1, "K": 1e3, "KB": 1e3, "M": 1e6, "MB": 1e6, "G": 1e9, "GB": 1e9, "T": 1e12, "TB": 1e12,
          "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}


class BudgetError(ValueError):
    """No index fits the memory budget; the message names the smallest one and what it needs."""


def parse_bytes(text: str | int | float) -> int:
    """``"4GB"`` -> 4e9, ``"512MiB"`` -> 512 * 2**20, ``1000`` -> 1000."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value = float(text)
    else:
        m = re.fullmatch(r"\s*([0-9.]+)\s*([A-Za-z]*)\s*", str(text))
        if not m or m[2].upper() not in _UNITS:
            raise ValueError(f"memory budget must look like 4GB, 512MB or 2GiB, got {text!r}")
        value = float(m[1]) * _UNITS[m[2].upper()]
    if value <= 0:
        raise ValueError(f"memory budget must be positive, got {text!r}")
    return int(value)


def human(n: float) -> str:
    """Bytes in the largest decimal unit under 1000 (``3.2 GB``)."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.3g} {unit}"
        n /= 1000
    return f"{n} B"


def nb_clusters(n: int) -> int:
    """IVF lists for N vectors (autofaiss): ~4 sqrt(N) below 1M, then 2^14, 2^16, 2^17; >= 39 vectors per list."""
    if n < 1_000_000:
        k = 2 ** round(math.log2(max(1.0, 4 * math.sqrt(n))))
    elif n < 10_000_000:
        k = 16_384
    elif n < 300_000_000:
        k = 65_536
    else:
        k = 131_072
    return max(1, min(k, n // 39))


def _ivf(k: int) -> str:
    return f"IVF{k}_HNSW32" if k >= 1000 else f"IVF{k}"


def opq_dim(d: int, m: int) -> int:
    """OPQ's output dimension for m sub-quantizers: a multiple of m a little above d (autofaiss's rule)."""
    return (min(d // m, 6) + 1) * m


def pq_factory(m: int, d: int, k: int) -> str:
    """``OPQ{m}_{d'},IVF{k}[_HNSW32],PQ{m}x8``, autofaiss's spelling."""
    return f"OPQ{m}_{opq_dim(d, m)},{_ivf(k)},PQ{m}x8"


def estimate_bytes(factory: str, n: int, d: int) -> int:
    """Memory of `factory` holding N d-dimensional float vectors (codes, ids, centroids, graph links)."""
    f = factory.replace(" ", "")
    if f == "Flat":
        return 4 * n * d
    m = re.fullmatch(r"HNSW(\d+)(?:,Flat)?", f)
    if m:
        return n * (4 * d + 8 * int(m[1]))  # level-0 links: 2M int32 per vector (autofaiss's estimate)
    m = re.fullmatch(r"IVF(\d+)(_HNSW32)?,(Flat|SQ8)", f)
    if m:
        k, code = int(m[1]), (4 * d if m[3] == "Flat" else d)
        return n * (code + ID_BYTES) + k * 4 * d + (k * 32 * 8 if m[2] else 0)
    m = re.fullmatch(r"OPQ(\d+)(?:_(\d+))?,IVF(\d+)(_HNSW32)?,PQ(\d+)(?:x8)?", f)
    if m:  # centroids and codebooks live in OPQ's output space d'
        d_out, k, pq = int(m[2] or d), int(m[3]), int(m[5])
        return n * (pq + ID_BYTES) + k * 4 * d_out + (k * 32 * 8 if m[4] else 0) + 4 * d * d_out + 256 * 4 * d_out
    raise ValueError(f"no memory estimate for {factory!r}")


@dataclass
class AutoIndex:
    """The chosen factory string and why; after `tune`, the search parameter and its measured latency."""

    factory: str
    reason: str
    n: int
    dim: int
    budget_bytes: int
    estimated_bytes: int
    rejected: list[str] = field(default_factory=list)
    max_query_ms: float | None = None
    param: str | None = None
    value: int | None = None
    query_ms: float | None = None
    met: bool | None = None
    tried: list[tuple[int, float]] = field(default_factory=list)
    exact_ms: float | None = None  # latency of exact search on the same queries (when Flat fits the budget)
    replaced: str | None = None  # the index replaced by Flat for being slower than exact search

    def as_dict(self) -> dict:
        return asdict(self)

    def binary_like(self) -> bool:
        """True for hash indexes (BFlat / BIVF): exact Hamming search is already chosen whenever it fits."""
        return self.factory.startswith("B")


def choose_index(n: int, dim: int, budget: str | int, binary: bool = False, ondisk: bool = False) -> AutoIndex:
    """The factory string for N vectors of dimension `dim` (bits for hashes) under `budget` bytes.

    `ondisk`: only IVF indexes (they alone memory-map, `fast_search.ondisk`), as autofaiss's
    ``should_be_memory_mappable``.
    """
    budget_bytes = parse_bytes(budget)
    if n < 1 or dim < 1:
        raise ValueError(f"need a non-empty database of positive dimension, got N={n}, d={dim}")
    rejected: list[str] = []

    def pick(factory: str, reason: str, size: int) -> AutoIndex:
        return AutoIndex(factory, reason, n, dim, budget_bytes, int(size), rejected)

    if binary:  # packed hashes: exact Hamming search is cheap; an IVF only when the codes do not fit
        code = dim // 8
        if n * code <= budget_bytes:
            return pick("BFlat", f"{n} hashes of {dim} bits fit the budget exactly searched", n * code)
        k = nb_clusters(n)
        size = n * (code + ID_BYTES) + k * code
        if size <= budget_bytes:
            return pick(f"BIVF{k}", f"BFlat needs {human(n * code)}, over the budget", size)
        raise BudgetError(f"memory budget {human(budget_bytes)} is too small for {n} hashes of {dim} bits: the "
                          f"smallest index, BFlat, needs {human(n * code)}")
    candidates: list[tuple[str, str]] = []
    if ondisk and binary:
        raise ValueError("on-disk indexes need float features")
    if n < 1_000 and not ondisk:
        candidates.append(("Flat", f"N={n} < 1,000: exact search is as fast as any index"))
    elif n < 10_000 and not ondisk:
        candidates.append(("HNSW15", f"N={n} < 10,000: too few vectors to train a quantizer; HNSW15"))
    m_hnsw = math.floor((budget_bytes / (4 * n) - dim) / 2)
    if m_hnsw >= 8 and not ondisk:
        M = min(m_hnsw, 32)
        candidates.append((f"HNSW{M}", f"an HNSW graph with M={M} (>= 8) fits: the best speed/recall in memory"))
    k = nb_clusters(n)
    if n < 1_000_000:
        why = "on disk: IVF only" if ondisk else "HNSW with M >= 8 does not fit"
        candidates.append((f"IVF{k},Flat", f"{why}; N < 1M: IVF-Flat, k ~ 4 sqrt(N) = {k}"))
    # PQ codebooks have 256 centroids each: faiss wants >= 39 x 256 training vectors (autofaiss: 10,000)
    pq_options = [pq for pq in PQ_SIZES if pq < dim] if n >= 10_000 else []
    for pq in pq_options:
        candidates.append((pq_factory(pq, dim, k),
                           f"neither HNSW nor IVF-Flat fits; the largest PQ code that fits is {pq} bytes "
                           f"(OPQ to {opq_dim(dim, pq)} dimensions), k = {k}"))
    for factory, reason in candidates:
        size = estimate_bytes(factory, n, dim)
        if size <= budget_bytes:
            return pick(factory, f"{reason} (estimated {human(size)} <= budget {human(budget_bytes)})", size)
        rejected.append(f"{factory}: {human(size)}")
    smallest = min(candidates, key=lambda c: estimate_bytes(c[0], n, dim))[0]
    raise BudgetError(
        f"memory budget {human(budget_bytes)} is too small for {n} vectors of dimension {dim}: the smallest index, "
        f"{smallest}, needs about {human(estimate_bytes(smallest, n, dim))} (ask at least that much)"
    )


def search_range(factory: str, n: int) -> tuple[str | None, list[int]]:
    """The parameter tuned for `factory` and its candidate values, smallest (fastest) first."""
    m = re.search(r"IVF(\d+)", factory)
    if m:
        return "nprobe", list(range(1, min(6144, int(m[1])) + 1))
    if "HNSW" in factory:
        return "efSearch", list(range(16, min(4096, max(16, n)) + 1))
    return None, []


def measure_ms(search: Callable[[np.ndarray], object], xq: np.ndarray, timeout_s: float = 1.0,
               max_queries: int = 2000) -> float:
    """Mean milliseconds per query, one query per search call (autofaiss's ``speed_test_ms_per_query``).

    Queries are taken in order (cycling) until `max_queries` or `timeout_s` seconds: the latency a
    user waits for one query, not a batch's throughput divided by its size.
    """
    xq = np.ascontiguousarray(xq)
    count, start = 0, time.perf_counter()
    while count < max_queries:
        search(xq[count % len(xq)][None])
        count += 1
        if time.perf_counter() - start > timeout_s:
            break
    return 1000 * (time.perf_counter() - start) / count


def point_timeout_s(max_query_ms: float) -> float:
    """Time spent measuring one parameter value: 15 queries' worth of the budget, at most 1 s (autofaiss)."""
    return min(1.0, 15 * max_query_ms / 1000)


def tune(
    choice: AutoIndex,
    set_param: Callable[[str, int], object],
    search: Callable[[np.ndarray], object],
    xq: np.ndarray,
    max_query_ms: float,
    latency: Callable[[np.ndarray], float] | None = None,
    exact_ms: float | None = None,
) -> AutoIndex:
    """Binary search the largest parameter value whose latency on `xq` stays under `max_query_ms`.

    `set_param(name, value)` and `search(xq)` act on the built index; `latency(xq)` measures ms per
    query (default: `measure_ms` of `search`, one query per call; tests pass a deterministic one).
    Latency grows with nprobe / efSearch, so the largest acceptable value is the most accurate; the
    value found is measured again 6x longer and lowered by 5 % steps while too slow (autofaiss).
    `exact_ms`: the latency of exact search (Flat) on the same queries, when Flat fits the budget.
    Then the limit is also `exact_ms` (never slower than exact search), and an index slower than
    that even at its fastest value becomes ``Flat`` (``replaced`` names the index it was). When
    nothing is fast enough the fastest value is kept and ``met`` is False.
    """
    if max_query_ms <= 0:
        raise ValueError(f"max_query_ms must be positive, got {max_query_ms!r}")
    timeout = point_timeout_s(max_query_ms)
    measure = latency or (lambda q: measure_ms(search, q, timeout))
    confirm = latency or (lambda q: measure_ms(search, q, min(1.0, 6 * timeout)))
    param, values = search_range(choice.factory, choice.n)
    limit = min(max_query_ms, exact_ms) if exact_ms is not None else max_query_ms
    choice.max_query_ms, choice.param, choice.exact_ms = float(max_query_ms), param, exact_ms
    if param is None:
        ms = measure(xq)
        choice.query_ms, choice.met = ms, ms <= max_query_ms
        return choice
    tried: dict[int, float] = {}

    def ms_at(i: int) -> float:
        value = values[i]
        if value not in tried:
            set_param(param, value)
            tried[value] = measure(xq)
        return tried[value]

    lo, hi = 0, len(values) - 1  # invariant: the answer is in [lo, hi] (lo when nothing is fast enough)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if ms_at(mid) <= limit:
            lo = mid
        else:
            hi = mid - 1
    set_param(param, values[lo])
    ms = confirm(xq)  # longer measurement of the value found; step down while it is too slow
    while ms > limit and lo > 0:
        lo = max(0, lo - max(1, math.floor(0.05 * lo)))
        set_param(param, values[lo])
        ms = confirm(xq)
    tried[values[lo]] = ms
    choice.tried = sorted(tried.items())
    if exact_ms is not None and ms > exact_ms:  # slower than exact search at its fastest: use exact search
        choice.replaced, choice.factory, choice.param = choice.factory, "Flat", None
        choice.reason += (f"; replaced by Flat: even at {param}={values[lo]} it took {ms:.3g} ms per query, "
                          f"exact search {exact_ms:.3g} ms with recall 1")
        choice.estimated_bytes = estimate_bytes("Flat", choice.n, choice.dim)
        choice.value, choice.query_ms, choice.met = None, exact_ms, exact_ms <= max_query_ms
        return choice
    choice.value, choice.query_ms, choice.met = values[lo], ms, ms <= max_query_ms
    return choice


# ---- experiment glue -------------------------------------------------------------------------
def choose_for_experiment(cfg, info: dict) -> AutoIndex:
    """`choose_index` for an experiment's database (``cfg.memory_budget``; default: 4GB)."""
    return choose_index(info["n_database"], info["dim"], cfg.memory_budget or "4GB", info["binary"], cfg.ondisk)


def tune_experiment_index(choice: AutoIndex, index, cfg, data, metric: str, width: int, n_sample: int = 1000) -> int | None:
    """Tune the built `index` (a `FaissIndex`) on a held-out sample of database vectors; the value to search with."""
    from fast_search.block import array_blocks
    from fast_search.data import database_blocks
    from fast_search.index import prepare
    from fast_search.ondisk import sample_rows

    n = len(data.database_ids)
    if data.database is not None:
        blocks = array_blocks(data.database)
    else:
        blocks = database_blocks(cfg.sorted_sources()[0], cfg.method, cfg.features_root, cfg.block_size)
    xq = prepare(sample_rows(blocks, n, min(n_sample, n), seed=1), metric)
    database = None if cfg.ondisk else data.database
    return tune_index(choice, index, xq, width, cfg.max_query_ms, metric, database).value


def tune_index(choice: AutoIndex, index, xq: np.ndarray, width: int, max_query_ms: float, metric: str = "L2",
               database: np.ndarray | None = None) -> AutoIndex:
    """`tune` a built `FaissIndex` on prepared queries `xq`, k = `width`; with `database` (in memory) and
    Flat within the budget, exact search's latency is measured on the same queries and bounds the result."""
    raw = index.index_
    exact_ms = None
    fits = estimate_bytes("Flat", choice.n, choice.dim) <= choice.budget_bytes and not choice.binary_like()
    if fits and database is not None and choice.factory != "Flat":
        from fast_search.index import FaissIndex

        flat = FaissIndex("Flat", metric).fit(database).add(database)
        exact_ms = measure_ms(lambda q: flat.index_.search(q, width), xq, point_timeout_s(max_query_ms))
        del flat

    def set_param(name: str, value: int) -> None:
        index.set_param(name, value)
        if name == "nprobe" and "_HNSW" in choice.factory:  # the centroid graph searched as wide (autofaiss)
            index.set_param("quantizer_efSearch", max(16, 2 * value))

    return tune(choice, set_param, lambda q: raw.search(q, width), xq, max_query_ms, exact_ms=exact_ms)
