# ruff: noqa: E741  (D, I) is faiss's fixed name for k-NN distances and ids
"""IVF-PQ from scratch in numpy (Jegou et al., PAMI 2011), to understand and check faiss's IndexIVFPQ.

1. coarse quantiser: k-means with `nlist` centroids; each vector goes to its nearest list;
2. residuals: vector minus its list's centroid;
3. product quantiser: the residual is cut into `m` sub-vectors, each replaced by the nearest of
   ``2**nbits`` centroids of its sub-space (one k-means per sub-space): `m` codes per vector;
4. search: the `nprobe` nearest lists of a query are scanned with asymmetric distances, one
   look-up table of query-to-codeword distances per (query, list), summed over the `m` codes.

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
        assign = _sq_dists(x, centroids).argmin(1)
        counts = np.bincount(assign, minlength=k)
        sums = np.zeros_like(centroids, dtype=np.float64)
        np.add.at(sums, assign, x)
        nonempty = counts > 0
        centroids[nonempty] = (sums[nonempty] / counts[nonempty, None]).astype(np.float32)
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
    Learned attributes: ``coarse_centroids_`` (nlist, d), ``codebooks_`` (m, 2**nbits, d/m),
    ``codes_`` and ``ids_`` per list.
    """

    def __init__(
        self, nlist: int = 100, m: int = 8, nbits: int = 8, nprobe: int = 1, metric: str = "L2",
        niter: int = 25, seed: int = 1234,
    ) -> None:
        if metric not in ("L2", "IP"):
            raise ValueError(f"metric must be 'L2' or 'IP', got {metric!r}")
        if not 1 <= nbits <= 16:
            raise ValueError(f"nbits must be in 1..16, got {nbits}")
        self.nlist, self.m, self.nbits, self.nprobe = nlist, m, nbits, nprobe
        self.metric, self.niter, self.seed = metric, niter, seed

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
        coarse = kmeans(x, self.nlist, self.niter, self.seed)
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
        self._coarse_norms = (self.coarse_centroids_**2).sum(1)
        self.codes_ = [np.empty((0, self.m), self._code_dtype) for _ in range(self.nlist)]
        self.ids_ = [np.empty(0, np.int64) for _ in range(self.nlist)]
        self.ntotal = 0
        return self

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

    def add(self, x: np.ndarray, batch_size: int = 65536) -> IVFPQ:
        """Encode and append vectors; their ids continue from `ntotal`."""
        self._check_trained()
        for start in range(0, len(x), batch_size):
            xb = np.ascontiguousarray(x[start : start + batch_size], dtype=np.float32)
            lists = self.assign(xb)
            codes = self.encode(xb, lists)
            ids = np.arange(self.ntotal, self.ntotal + len(xb))
            order = np.argsort(lists, kind="stable")
            bounds = np.searchsorted(lists[order], np.arange(self.nlist + 1))
            for l in np.flatnonzero(np.diff(bounds)):
                sel = order[bounds[l] : bounds[l + 1]]
                self.codes_[l] = np.concatenate([self.codes_[l], codes[sel]])
                self.ids_[l] = np.concatenate([self.ids_[l], ids[sel]])
            self.ntotal += len(xb)
        return self

    # ---- search ----------------------------------------------------------------------------
    def search(self, xq: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(D, I) of the k best database vectors among the `nprobe` lists nearest each query."""
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
        dsub = self.d // self.m
        sub_q = xq.reshape(nq, self.m, dsub)
        # inner products of each query sub-vector with every codeword: (nq, m, ksub)
        q_dot_book = np.einsum("qjd,jkd->qjk", sub_q, self.codebooks_)
        # per-query candidate scores and ids, list by list (queries grouped by probed list)
        cand_d: list[list[np.ndarray]] = [[] for _ in range(nq)]
        cand_i: list[list[np.ndarray]] = [[] for _ in range(nq)]
        q_rows, ranks = np.nonzero(np.ones_like(probe, dtype=bool))
        lists = probe[q_rows, ranks]
        order = np.argsort(lists, kind="stable")
        bounds = np.searchsorted(lists[order], np.arange(self.nlist + 1))
        js = np.arange(self.m)
        for l in np.flatnonzero(np.diff(bounds)):
            codes = self.codes_[l]
            if not len(codes):
                continue
            qs = q_rows[order[bounds[l] : bounds[l + 1]]]
            if ip:
                tables = q_dot_book[qs]  # (nql, m, ksub)
                base = coarse[qs, l]
            else:  # ||q - c - r||^2 = sum_j ||(q - c)_j - r_j||^2
                c_sub = self.coarse_centroids_[l].reshape(self.m, dsub)
                c_dot_book = np.einsum("jd,jkd->jk", c_sub, self.codebooks_)
                tables = self._book_norms[None] - 2.0 * (q_dot_book[qs] - c_dot_book[None])
                base = coarse[qs, l]
            scores = np.repeat(base[:, None], len(codes), axis=1).astype(np.float32)
            for j in js:
                scores += tables[:, j, :][:, codes[:, j]]
            for row, q in enumerate(qs):
                cand_d[q].append(scores[row])
                cand_i[q].append(self.ids_[l])
        D = np.full((nq, k), -np.inf if ip else np.inf, np.float32)
        I = np.full((nq, k), -1, np.int64)
        for q in range(nq):
            if not cand_d[q]:
                continue
            d, i = np.concatenate(cand_d[q]), np.concatenate(cand_i[q])
            key = -d if ip else d
            top = np.lexsort((i, key))[:k]  # ties: smaller id first, as faiss's heaps keep them
            D[q, : len(top)], I[q, : len(top)] = d[top], i[top]
        return D, I

    def memory_bytes(self) -> int:
        """Codes and ids of the lists plus the centroids and codebooks."""
        self._check_trained()
        lists = sum(c.nbytes + i.nbytes for c, i in zip(self.codes_, self.ids_, strict=True))
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
