# ruff: noqa: E741  (D, I) is faiss's fixed name for k-NN distances and ids
"""IVF-PQ from scratch in numpy (Jegou et al., PAMI 2011), to understand and check faiss's IndexIVFPQ.

1. coarse quantiser: k-means with `nlist` centroids; each vector goes to its nearest list;
2. residuals: vector minus its list's centroid;
3. product quantiser: the residual is cut into `m` sub-vectors, each replaced by the nearest of
   ``2**nbits`` centroids of its sub-space (one k-means per sub-space): `m` codes per vector;
4. search: the `nprobe` nearest lists of a query are scanned with asymmetric distances. As in
   faiss's precomputed tables, ``||q - c - r||^2 = ||q - c||^2 + (||r||^2 + 2<c, r>) - 2<q, r>``:
   the middle term depends on the database vector only (computed once when it is added), and
   ``<q, r> = sum_j <q_j, r_j>`` is one look-up table per query (m x 2**nbits inner products),
   shared by all its lists. The lists are one flat code array ordered by list, so a block of
   queries gathers all its candidates at once and sums the table over the m codes in m
   vectorised gathers; the top k come from a partition of each query's candidate row (no Python
   loop over lists or queries).

Metrics: ``L2`` (squared distances, as faiss) and ``IP`` (inner product: the coarse list is the
largest product, the score ``<q, c> + sum_j <q_j, r_j>``). `from_faiss` copies a trained
``faiss.IndexIVFPQ``'s centroids and codebooks so both give the same codes and neighbours.

`CustomIndex` wraps it with `FaissIndex`'s interface, so ``run_experiment`` accepts
``"custom:IVF100,PQ8"`` (or ``PQ8x4`` for 4-bit codes) next to faiss factory strings.
"""

from __future__ import annotations

import re
import time

import numpy as np
from tqdm.auto import tqdm

from fast_search.index import content_order, prepare, to_distance

PREFIX = "custom:"
_FACTORY = re.compile(r"^IVF(\d+),PQ(\d+)(?:x(\d+))?$")


def _sq_dists(x: np.ndarray, c: np.ndarray, c_norms: np.ndarray | None = None) -> np.ndarray:
    """Squared L2 distances (n, k) between rows of x and c, through one matrix product."""
    c_norms = (c * c).sum(1) if c_norms is None else c_norms
    d = (x * x).sum(1)[:, None] - 2.0 * (x @ c.T) + c_norms[None, :]
    return np.maximum(d, 0, out=d)


def _nearest(x: np.ndarray, c: np.ndarray, block: int = 16384) -> np.ndarray:
    """Index of the nearest row of c for each row of x: argmin of ||c||^2 - 2 <x, c> (x's norm is common),
    one matrix product of [x, 1] with [-2c, ||c||^2] (no elementwise passes over the (n, k) scores)."""
    aug = np.empty((len(c), c.shape[1] + 1), np.float32)
    aug[:, :-1] = -2.0 * c
    aug[:, -1] = (c * c).sum(1)
    out = np.empty(len(x), np.int64)
    xa = np.empty((min(block, len(x)), x.shape[1] + 1), np.float32)
    xa[:, -1] = 1.0
    for s in range(0, len(x), block):  # bounded (block, k) scratch
        e = min(s + block, len(x))
        xa[: e - s, :-1] = x[s:e]
        out[s:e] = (xa[: e - s] @ aug.T).argmin(1)
    return out


def kmeans(
    x: np.ndarray, k: int, niter: int = 25, seed: int = 1234, max_points_per_centroid: int = 256
) -> np.ndarray:
    """Lloyd's k-means as faiss runs it: random distinct points as seeds, subsampling to
    `max_points_per_centroid * k` points, an empty cluster takes half of the largest one."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    n = len(x)
    if n < k:
        raise ValueError(f"k-means needs at least k={k} training points, got {n}")
    rng = np.random.default_rng(seed)
    if n > k * max_points_per_centroid:
        x = x[rng.choice(n, k * max_points_per_centroid, replace=False)]
        n = len(x)
    centroids = x[rng.choice(n, k, replace=False)].copy()
    for _ in range(niter):
        assign = _nearest(x, centroids)
        counts = np.bincount(assign, minlength=k)
        nonempty = counts > 0
        # per-cluster sums in float64 over the points sorted by cluster (np.add.at's order, 100x faster)
        order = np.argsort(assign, kind="stable")
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])[nonempty]
        sums = np.add.reduceat(x[order], starts, axis=0, dtype=np.float64)
        centroids[nonempty] = (sums / counts[nonempty, None]).astype(np.float32)
        for empty in np.flatnonzero(~nonempty):  # split the largest cluster, as faiss does
            big = int(counts.argmax())
            eps = rng.uniform(-1e-4, 1e-4, centroids.shape[1]).astype(np.float32)
            centroids[empty] = centroids[big] * (1 + eps)
            centroids[big] = centroids[big] * (1 - eps)
            counts[empty] = counts[big] // 2
            counts[big] -= counts[empty]
    return centroids


class IVFPQ:
    """IVF-PQ index: `fit` trains, `add` encodes, `search` returns (D, I) like faiss.

    D holds squared L2 distances (``metric="L2"``) or inner products (``"IP"``) of the decoded
    vectors, best first; I the positions in added order (-1 where fewer than k were scanned).
    `coarse_niter` (10) and `niter` (25) are faiss's k-means iterations for the coarse quantiser
    and for each PQ sub-space. Learned attributes: ``coarse_centroids_`` (nlist, d), ``codebooks_`` (m, 2**nbits, d/m),
    ``codes_`` and ``ids_`` per list.
    """

    def __init__(
        self, nlist: int = 100, m: int = 8, nbits: int = 8, nprobe: int = 1, metric: str = "L2",
        niter: int = 25, seed: int = 1234, coarse_niter: int = 10,
    ) -> None:
        if metric not in ("L2", "IP"):
            raise ValueError(f"metric must be 'L2' or 'IP', got {metric!r}")
        if not 1 <= nbits <= 16:
            raise ValueError(f"nbits must be in 1..16, got {nbits}")
        self.nlist, self.m, self.nbits, self.nprobe = nlist, m, nbits, nprobe
        self.metric, self.niter, self.seed, self.coarse_niter = metric, niter, seed, coarse_niter

    @property
    def ksub(self) -> int:
        return 1 << self.nbits

    # ---- training --------------------------------------------------------------------------
    def fit(self, x: np.ndarray) -> IVFPQ:
        """Train the coarse quantiser on x, then one k-means per sub-space on the residuals."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        d = x.shape[1]
        if d % self.m:
            raise ValueError(f"dimension {d} is not a multiple of m={self.m}")
        coarse = kmeans(x, self.nlist, self.coarse_niter, self.seed)  # faiss's Level1Quantizer: 10 iterations
        residuals = x - coarse[self._assign_with(x, coarse)]
        dsub = d // self.m
        books = np.empty((self.m, self.ksub, dsub), np.float32)
        for j in tqdm(range(self.m), desc="PQ k-means", unit="sub", disable=self.m < 16, leave=False):
            books[j] = kmeans(residuals[:, j * dsub : (j + 1) * dsub], self.ksub, self.niter, self.seed + 1 + j)
        return self.set_quantizers(coarse, books)

    def set_quantizers(self, coarse_centroids: np.ndarray, codebooks: np.ndarray) -> IVFPQ:
        """Use given centroids (nlist, d) and PQ codebooks (m, 2**nbits, d/m); empties the lists."""
        self.coarse_centroids_ = np.ascontiguousarray(coarse_centroids, dtype=np.float32)
        self.codebooks_ = np.ascontiguousarray(codebooks, dtype=np.float32)
        self.nlist, self.m = len(self.coarse_centroids_), self.codebooks_.shape[0]
        self.nbits = int(np.log2(self.codebooks_.shape[1]))
        self.d = self.coarse_centroids_.shape[1]
        self._book_norms = (self.codebooks_**2).sum(2)  # (m, ksub)
        self._books_t = np.ascontiguousarray(self.codebooks_.transpose(0, 2, 1))  # (m, dsub, ksub)
        self._coarse_norms = (self.coarse_centroids_**2).sum(1)
        # the inverted lists, flat and ordered by list: list l holds rows offsets_[l]:offsets_[l + 1]
        self._codes = np.empty((0, self.m), self._code_dtype)
        self._ids = np.empty(0, np.int64)
        self._lists = np.empty(0, np.int64)
        self._term = np.empty(0, np.float32)  # ||r||^2 + 2 <c, r> per stored vector (L2)
        self.offsets_ = np.zeros(self.nlist + 1, np.int64)
        self.ntotal = 0
        return self

    @property
    def codes_(self) -> list[np.ndarray]:
        """The PQ codes of each inverted list (views of the flat code array)."""
        return [self._codes[a:b] for a, b in zip(self.offsets_[:-1], self.offsets_[1:], strict=True)]

    @property
    def ids_(self) -> list[np.ndarray]:
        """The ids (positions in added order) of each inverted list."""
        return [self._ids[a:b] for a, b in zip(self.offsets_[:-1], self.offsets_[1:], strict=True)]

    @classmethod
    def from_faiss(cls, index, nprobe: int | None = None) -> IVFPQ:
        """An empty IVFPQ with the trained quantisers of a ``faiss.IndexIVFPQ`` (by_residual, no OPQ)."""
        import faiss

        ivf = faiss.downcast_index(faiss.extract_index_ivf(index))
        if not isinstance(ivf, faiss.IndexIVFPQ):
            raise TypeError(f"expected a faiss IndexIVFPQ, got {type(ivf).__name__}")
        pq = ivf.pq
        coarse = ivf.quantizer.reconstruct_n(0, ivf.nlist)
        books = faiss.vector_to_array(pq.centroids).reshape(pq.M, pq.ksub, pq.dsub)
        metric = "IP" if ivf.metric_type == faiss.METRIC_INNER_PRODUCT else "L2"
        out = cls(ivf.nlist, pq.M, pq.nbits, nprobe or ivf.nprobe, metric)
        return out.set_quantizers(coarse, books)

    @property
    def _code_dtype(self):
        return np.uint8 if self.nbits <= 8 else np.uint16

    def _check_trained(self) -> None:
        if not hasattr(self, "coarse_centroids_"):
            raise RuntimeError("this IVFPQ is not trained yet: call fit() (or set_quantizers) first")

    # ---- encoding --------------------------------------------------------------------------
    def _assign_with(self, x: np.ndarray, coarse: np.ndarray) -> np.ndarray:
        if self.metric == "IP":
            return (x @ coarse.T).argmax(1)
        return _sq_dists(x, coarse).argmin(1)

    def assign(self, x: np.ndarray) -> np.ndarray:
        """The inverted list of each vector (nearest coarse centroid, or largest product for IP)."""
        self._check_trained()
        return self._assign_with(np.ascontiguousarray(x, dtype=np.float32), self.coarse_centroids_)

    def encode(self, x: np.ndarray, lists: np.ndarray | None = None) -> np.ndarray:
        """(n, m) PQ codes of the residuals of x with respect to their lists' centroids."""
        self._check_trained()
        x = np.ascontiguousarray(x, dtype=np.float32)
        lists = self.assign(x) if lists is None else lists
        residuals = x - self.coarse_centroids_[lists]
        dsub = self.d // self.m
        codes = np.empty((len(x), self.m), self._code_dtype)
        for j in range(self.m):
            sub = residuals[:, j * dsub : (j + 1) * dsub]
            codes[:, j] = _sq_dists(sub, self.codebooks_[j], self._book_norms[j]).argmin(1)
        return codes

    def decode(self, codes: np.ndarray, lists: np.ndarray) -> np.ndarray:
        """Reconstructed vectors: list centroid plus the codewords of each sub-space."""
        parts = [self.codebooks_[j][codes[:, j]] for j in range(self.m)]
        return self.coarse_centroids_[lists] + np.concatenate(parts, axis=1)

    def _residual_term(self, codes: np.ndarray, lists: np.ndarray, block: int = 8192) -> np.ndarray:
        """||r||^2 + 2 <c, r> of each encoded vector (r its decoded residual, c its list's centroid)."""
        out = np.empty(len(codes), np.float32)
        dsub = self.d // self.m
        for s in range(0, len(codes), block):
            cb, lb = codes[s : s + block], lists[s : s + block]
            r = np.empty((len(cb), self.d), np.float32)
            for j in range(self.m):
                r[:, j * dsub : (j + 1) * dsub] = self.codebooks_[j][cb[:, j]]
            out[s : s + block] = np.einsum("nd,nd->n", r, r + 2.0 * self.coarse_centroids_[lb])
        return out

    def add(self, x: np.ndarray, batch_size: int = 65536) -> IVFPQ:
        """Encode and append vectors; their ids continue from `ntotal`."""
        self._check_trained()
        for start in range(0, len(x), batch_size):
            xb = np.ascontiguousarray(x[start : start + batch_size], dtype=np.float32)
            lists = self.assign(xb)
            codes = self.encode(xb, lists)
            term = self._residual_term(codes, lists) if self.metric == "L2" else np.zeros(len(xb), np.float32)
            all_lists = np.concatenate([self._lists, lists])
            order = np.argsort(all_lists, kind="stable")  # by list; within a list, in added order
            self._lists = all_lists[order]
            self._codes = np.concatenate([self._codes, codes])[order]
            self._ids = np.concatenate([self._ids, np.arange(self.ntotal, self.ntotal + len(xb))])[order]
            self._term = np.concatenate([self._term, term])[order]
            self.offsets_ = np.searchsorted(self._lists, np.arange(self.nlist + 1))
            self.ntotal += len(xb)
        return self

    # ---- search ----------------------------------------------------------------------------
    def search(self, xq: np.ndarray, k: int, max_candidates: int = 1 << 17) -> tuple[np.ndarray, np.ndarray]:
        """(D, I) of the k best database vectors among the `nprobe` lists nearest each query.

        Queries go in blocks of at most `max_candidates` scanned codes (bounded memory).
        """
        self._check_trained()
        xq = np.ascontiguousarray(xq, dtype=np.float32)
        nq, nprobe = len(xq), min(self.nprobe, self.nlist)
        ip = self.metric == "IP"
        if ip:
            coarse = xq @ self.coarse_centroids_.T
            probe = np.argsort(-coarse, axis=1, kind="stable")[:, :nprobe]
        else:
            coarse = _sq_dists(xq, self.coarse_centroids_, self._coarse_norms)
            probe = np.argsort(coarse, axis=1, kind="stable")[:, :nprobe]
        sizes = np.diff(self.offsets_)
        per_query = sizes[probe].sum(1)
        D = np.full((nq, k), -np.inf if ip else np.inf, np.float32)
        I = np.full((nq, k), -1, np.int64)
        start = 0
        while start < nq:  # blocks of queries, each scanned in one pass
            stop = start + max(1, int(np.searchsorted(np.cumsum(per_query[start:]), max_candidates, side="right")))
            stop = min(stop, nq)
            rows = np.arange(start, stop)
            base = np.take_along_axis(coarse[rows], probe[rows], axis=1)
            D[rows], I[rows] = self._scan(xq[rows], probe[rows], base, k)
            start = stop
        return D, I

    def _scan(self, xq: np.ndarray, probe: np.ndarray, base: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top k of a block of queries over their probed lists: one table per query, m gathers."""
        ip = self.metric == "IP"
        nq, nprobe = probe.shape
        ksub, dsub = self.ksub, self.d // self.m
        # <q_j, book_j[c]> for every query, sub-space and codeword: (m, nq, ksub), batched BLAS
        tables = np.matmul(np.ascontiguousarray(xq.reshape(nq, self.m, dsub).transpose(1, 0, 2)), self._books_t)
        lists = probe.ravel()  # pair p = (query p // nprobe, its rank p % nprobe)
        sizes = self.offsets_[lists + 1] - self.offsets_[lists]
        total = int(sizes.sum())
        D = np.full((nq, k), -np.inf if ip else np.inf, np.float32)
        I = np.full((nq, k), -1, np.int64)
        if total == 0:
            return D, I
        pair = np.repeat(np.arange(len(lists), dtype=np.int32), sizes)  # candidate -> (query, list) pair
        first = np.cumsum(sizes) - sizes  # each pair's first candidate
        rows = np.arange(total, dtype=np.int64) - np.repeat(first - self.offsets_[lists], sizes)  # rows of the flat lists
        if self.ntotal < 2**31:
            rows = rows.astype(np.int32)
        query = pair // nprobe
        flat = tables.reshape(self.m, nq * ksub)
        at = query * ksub  # int32: the query's row of each sub-space's table
        codes = self._codes.take(rows, axis=0)  # (total, m): one contiguous m-byte copy per candidate
        idx, part = np.empty(total, np.int32), np.empty(total, np.float32)
        acc = np.zeros(total, np.float32)
        for j in range(self.m):  # m vectorised gathers: acc += T_j[query, code_j]
            np.add(at, codes[:, j], out=idx)
            flat[j].take(idx, out=part)
            acc += part
        score = base.ravel()[pair]
        if ip:
            score += acc
            key = -score
        else:
            score += self._term[rows]
            score -= 2.0 * acc
            key = score
        ids = self._ids[rows]
        # one row per query: its candidates left-aligned, padded with +inf keys and a sentinel id
        per_query = np.bincount(query, minlength=nq)
        width = int(per_query.max())
        col = np.arange(total) - np.repeat(np.cumsum(per_query) - per_query, per_query)
        pad = np.iinfo(np.int64).max
        keys = np.full((nq, width), np.inf, np.float32)
        idm = np.full((nq, width), pad, np.int64)
        keys[query, col], idm[query, col] = key, ids
        if width > k:  # the k best plus every candidate tied with the k-th (ties: smaller id first)
            kk = min(width, 2 * k)
            part = np.argpartition(keys, kk - 1, axis=1)[:, :kk]
            sub_keys, sub_ids = np.take_along_axis(keys, part, 1), np.take_along_axis(idm, part, 1)
            kth = np.sort(sub_keys, axis=1)[:, k - 1 : k]
            whole = (keys <= kth).sum(1) > kk  # more ties than the partition kept: sort the whole row
            if whole.any():
                sub_keys = np.where(whole[:, None], np.inf, sub_keys)
            order = np.lexsort((sub_ids, sub_keys), axis=1)[:, :k]
            top_keys, top_ids = np.take_along_axis(sub_keys, order, 1), np.take_along_axis(sub_ids, order, 1)
            for q in np.flatnonzero(whole):  # rare: exact ties spanning more than 2k candidates
                o = np.lexsort((idm[q], keys[q]))[:k]
                top_keys[q], top_ids[q] = keys[q, o], idm[q, o]
        else:
            order = np.lexsort((idm, keys), axis=1)
            top_keys, top_ids = np.take_along_axis(keys, order, 1), np.take_along_axis(idm, order, 1)
        found = top_ids != pad
        n = top_keys.shape[1]
        D[:, :n] = np.where(found, -top_keys if ip else top_keys, D[:, :n])
        I[:, :n] = np.where(found, top_ids, -1)
        return D, I

    def memory_bytes(self) -> int:
        """Codes and ids of the lists plus the centroids and codebooks."""
        self._check_trained()
        lists = self._codes.nbytes + self._ids.nbytes + self._term.nbytes + self.offsets_.nbytes
        return int(lists + self.coarse_centroids_.nbytes + self.codebooks_.nbytes)


def is_custom(factory: str) -> bool:
    """True for the from-scratch indexes' names (``custom:IVF100,PQ8``)."""
    return isinstance(factory, str) and factory.startswith(PREFIX)


def parse_custom(factory: str) -> tuple[int, int, int]:
    """(nlist, m, nbits) of ``custom:IVF<nlist>,PQ<m>[x<nbits>]``; ValueError otherwise."""
    match = _FACTORY.match(factory.removeprefix(PREFIX).replace(" ", ""))
    if not is_custom(factory) or not match:
        raise ValueError(f"{factory!r}: custom indexes are written 'custom:IVF<nlist>,PQ<m>' or 'custom:IVF<nlist>,PQ<m>x<nbits>'")
    return int(match[1]), int(match[2]), int(match[3] or 8)


class CustomIndex:
    """`IVFPQ` behind `FaissIndex`'s interface (fit/add/set_param/search/memory_bytes, timings)."""

    def __init__(self, factory: str, metric: str = "L2", binary: bool = False, batch_size: int = 4096) -> None:
        if binary:
            raise ValueError(f"{factory!r} works on float features, not binary hashes")
        if metric not in ("L2", "cosine", "IP"):
            raise ValueError(f"{factory!r} supports metrics L2, cosine and IP, not {metric!r}")
        self.factory, self.metric, self.binary, self.batch_size = factory, metric, binary, batch_size
        self.nlist, self.m, self.nbits = parse_custom(factory)

    def check_dim(self, dim: int) -> None:
        if dim % self.m:
            raise ValueError(f"{self.factory!r}: dimension {dim} is not a multiple of m={self.m}")

    def fit(self, x: np.ndarray) -> CustomIndex:
        x = prepare(np.asarray(x)[content_order(x)], self.metric)  # training sees vectors in content order
        self.check_dim(x.shape[1])
        self.index_ = IVFPQ(self.nlist, self.m, self.nbits, metric="L2" if self.metric == "L2" else "IP")
        start = time.perf_counter()
        self.index_.fit(x)
        self.train_time_, self.add_time_, self.ntotal_ = time.perf_counter() - start, 0.0, 0
        return self

    def add(self, x: np.ndarray) -> CustomIndex:
        start = time.perf_counter()
        self.index_.add(prepare(x, self.metric))
        self.add_time_ += time.perf_counter() - start
        self.ntotal_ = self.index_.ntotal
        return self

    def set_param(self, name: str, value: int) -> CustomIndex:
        if name != "nprobe":
            raise ValueError(f"{self.factory!r} has no search parameter {name!r} (only nprobe)")
        self.index_.nprobe = int(value)
        return self

    def search(self, xq: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        if k > self.ntotal_:
            raise ValueError(f"k={k} is larger than the database ({self.ntotal_} vectors)")
        xq = prepare(xq, self.metric)
        start = time.perf_counter()
        parts = [self.index_.search(xq[s : s + self.batch_size], k) for s in range(0, len(xq), self.batch_size)]
        self.search_time_, self.search_repeats_ = time.perf_counter() - start, 1
        D = np.concatenate([p[0] for p in parts]) if parts else np.empty((0, k), np.float32)
        I = np.concatenate([p[1] for p in parts]) if parts else np.empty((0, k), np.int64)
        return to_distance(D, self.metric), I

    def memory_bytes(self) -> int:
        return self.index_.memory_bytes()
