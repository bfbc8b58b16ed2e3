# ruff: noqa: E741  (D, I) is faiss's fixed name for k-NN distances and ids
"""faiss indexes named by their factory strings, metrics, and the distance convention.

The vocabulary is faiss's own: any `faiss.index_factory` string for float features (``Flat``,
``IVF1024,Flat``, ``IVF1024,PQ16``, ``HNSW32``, ``OPQ16,IVF256,PQ16``, ``PCA128,Flat``...) and any
`faiss.index_binary_factory` string for packed hashes (``BFlat``, ``BIVF64``, ``BHNSW32``).

Every search returns *distances* (smaller is closer) so thresholds work the same for all metrics:
L2 -> Euclidean distance (faiss's squared value, square-rooted), cosine -> ``1 - cos``,
inner product -> ``-<q, x>``, L1 -> L1, hamming -> differing bits.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence

import faiss
import numpy as np
from tqdm.auto import tqdm

from helpers.blas import configure_faiss

configure_faiss(faiss)  # BLAS blocks large enough for BLAS speed (helpers/blas.py)

#: Metric names accepted everywhere, and the faiss metric each one searches with.
METRICS = {
    "L2": faiss.METRIC_L2,
    "cosine": faiss.METRIC_INNER_PRODUCT,  # inner product on L2-normalised copies
    "IP": faiss.METRIC_INNER_PRODUCT,
    "L1": faiss.METRIC_L1,
    "hamming": None,  # binary indexes only
}
FLOAT_METRICS = ("L2", "cosine", "IP", "L1")
BINARY_METRICS = ("hamming",)
#: Components that faiss 1.15 cannot train or search with METRIC_L1 (k-means on codes is L2 only).
_NO_L1 = re.compile(r"PQ|SQ|LSH|RaBitQ|RQ|LSQ|NSG")
_BINARY_PREFIX = re.compile(r"B(Flat|IVF|HNSW|Hash|MultiHash)")
_FLOAT_EXAMPLES = "Flat, IVF1024,Flat, IVF1024,PQ16, HNSW32, OPQ16,IVF256,PQ16, PCA128,Flat"
_BINARY_EXAMPLES = "BFlat, BIVF64, BHNSW32"
#: Sweep parameter of each kind of index, set through faiss.ParameterSpace (binary: attributes).
SWEEP_PARAMS = {"IVF": "nprobe", "HNSW": "efSearch"}


def check_metric(metric: str, binary: bool) -> str:
    """Return `metric` if it suits float (or binary) features, else a ValueError listing the valid ones."""
    valid = BINARY_METRICS if binary else FLOAT_METRICS
    if metric not in valid:
        kind = "binary (hash)" if binary else "float"
        known = "" if metric in METRICS else f"unknown metric {metric!r}; "
        raise ValueError(
            f"{known}metric {metric!r} does not apply to {kind} features; valid: {', '.join(valid)}"
        )
    return metric


def is_exact(factory: str) -> bool:
    """True for the brute-force indexes (``Flat``, ``BFlat``, ``IDMap,Flat``)."""
    return factory.replace(" ", "") in ("Flat", "BFlat", "IDMap,Flat", "IDMap2,Flat")


def sweep_param(factory: str) -> str | None:
    """The search-time parameter swept for this factory string: ``nprobe`` (IVF), ``efSearch`` (HNSW) or None."""
    head = factory.split(",")
    for part in head:
        part = part.lstrip("B")
        if part.startswith("IVF"):
            return "nprobe"
    for part in head:
        if part.lstrip("B").startswith("HNSW"):
            return "efSearch"
    return None


_ZERO_SIZE = re.compile(r"(?<![\d.])0+(?![\d.])")


def make_index(factory: str, dim: int, metric: str, binary: bool):
    """Build an empty faiss index; an unknown or unsuitable factory string raises ValueError first."""
    if not isinstance(factory, str) or not factory.strip():
        raise ValueError(f"factory string must be a non-empty str, got {factory!r}")
    if _ZERO_SIZE.search(factory):  # faiss builds IVF0 / BIVF0 / HNSW0 and fails later, or never
        raise ValueError(f"{factory!r}: every size in a factory string must be positive (e.g. IVF64,Flat, BIVF64)")
    check_metric(metric, binary)
    if binary:
        if not factory.startswith("B"):
            raise ValueError(f"{factory!r} is a float index; binary features need one of: {_BINARY_EXAMPLES}")
        if dim % 8:
            raise ValueError(f"binary features need a multiple of 8 bits, got dim={dim}")
        try:
            return faiss.index_binary_factory(dim, factory)
        except RuntimeError as err:
            raise ValueError(
                f"faiss cannot build binary index {factory!r} for {dim} bits ({_last_line(err)}); "
                f"valid examples: {_BINARY_EXAMPLES}"
            ) from None
    if _BINARY_PREFIX.match(factory):
        raise ValueError(f"{factory!r} is a binary index; float features need one of: {_FLOAT_EXAMPLES}")
    if metric == "L1" and _NO_L1.search(factory):
        raise ValueError(
            f"faiss supports METRIC_L1 only on Flat, IVFn,Flat, HNSWm (and PCA in front of them), not {factory!r}"
        )
    try:
        index = faiss.index_factory(dim, factory, METRICS[metric])
    except RuntimeError as err:
        raise ValueError(
            f"faiss cannot build index {factory!r} for dim {dim} ({_last_line(err)}); "
            f"valid examples: {_FLOAT_EXAMPLES} (see faiss's index_factory documentation)"
        ) from None
    _no_polysemous_training(index)
    return index


def _no_polysemous_training(index) -> None:
    """Skip IVF-PQ's polysemous training (the factory turns it on): it only serves polysemous
    filtering (``polysemous_ht``), which we never set, leaves distances unchanged, and took 40 s
    of the 40.2 s an ``IVF16,PQ8`` training took on 1,000 vectors here."""
    try:
        ivf = faiss.downcast_index(faiss.extract_index_ivf(index))
    except RuntimeError:  # not an IVF index
        return
    if hasattr(ivf, "do_polysemous_training"):
        ivf.do_polysemous_training = False


def _last_line(err: Exception) -> str:
    text = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
    return text.split(": ", 1)[-1] if "index_factory" in text else text


def prepare(x: np.ndarray, metric: str) -> np.ndarray:
    """Contiguous float32 (or uint8 for hamming) copy ready for faiss; cosine L2-normalises rows.

    A zero row stays zero under cosine (its norm is replaced by 1, as in the seed).
    """
    if metric == "hamming":
        return np.ascontiguousarray(x, dtype=np.uint8)
    x = np.ascontiguousarray(x, dtype=np.float32)
    if metric == "cosine":
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        x = np.ascontiguousarray(x / norms, dtype=np.float32)
    return x


def canonical_order(D: np.ndarray, I: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows sorted by (distance, id), ``-1`` results last: one order for tied results everywhere."""
    key_i = np.where(I < 0, np.iinfo(np.int64).max, I)
    order = np.lexsort((key_i, D), axis=-1)
    return np.take_along_axis(D, order, axis=1), np.take_along_axis(I, order, axis=1)


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix(z: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser on uint64 arrays (wrapping arithmetic)."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def content_keys(x: np.ndarray, seed: int = 0) -> np.ndarray:
    """(n,) uint64 hash of each row's bytes: an order and a sample defined by the vectors, not their positions."""
    x = np.ascontiguousarray(x)
    b = x.view(np.uint8).reshape(len(x), -1)
    if b.shape[1] % 8:
        b = np.hstack([b, np.zeros((len(b), 8 - b.shape[1] % 8), np.uint8)])
    words = np.ascontiguousarray(b).view("<u8")
    h = np.full(len(x), _GOLDEN * np.uint64(seed + 1), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(words.shape[1]):
            h = _mix(h ^ words[:, j] + _GOLDEN)
    return h


def content_order(x: np.ndarray, keys: np.ndarray | None = None) -> np.ndarray:
    """Row order by content (hash, then the bytes themselves): the same vectors give the same order
    whatever order they come in, so index training never depends on file names or store order."""
    x = np.ascontiguousarray(x)
    keys = content_keys(x) if keys is None else keys
    order = np.argsort(keys, kind="stable")
    k = keys[order]
    same = np.flatnonzero(k[1:] == k[:-1])  # equal hashes (identical rows, or a rare collision)
    for start in np.unique(np.searchsorted(k, k[same])):
        stop = np.searchsorted(k, k[start], side="right")
        group = order[start:stop]
        order[start:stop] = sorted(group, key=lambda i: x[i].tobytes())
    return order


def to_distance(D: np.ndarray, metric: str) -> np.ndarray:
    """faiss's raw scores -> distances, smaller is closer (see the module docstring)."""
    D = np.asarray(D, dtype=np.float32)
    if metric == "L2":
        return np.sqrt(np.maximum(D, 0))
    if metric == "cosine":
        return 1.0 - D
    if metric == "IP":
        return -D
    return D


def check_finite(x: np.ndarray, ids: Sequence[str], what: str) -> None:
    """Refuse NaN or infinite features, naming (up to 10 of) the offending ids."""
    if x.dtype.kind != "f":
        return
    bad = ~np.isfinite(x).all(axis=1)
    if bad.any():
        where = np.flatnonzero(bad)
        names = ", ".join(str(ids[i]) for i in where[:10])
        more = f" and {len(where) - 10} more" if len(where) > 10 else ""
        raise ValueError(f"{what}: {len(where)} feature rows hold NaN or inf: {names}{more}")


def set_search_param(index, name: str, value: int) -> None:
    """Set nprobe / efSearch on a float (ParameterSpace) or binary (attribute) index."""
    if isinstance(index, faiss.IndexBinary):
        target = index
        if name == "efSearch":
            target = index.hnsw
        elif name == "nprobe" and not isinstance(index, faiss.IndexBinaryIVF):
            raise ValueError(f"nprobe does not apply to {type(index).__name__}")
        setattr(target, name, int(value))
        return
    try:
        faiss.ParameterSpace().set_index_parameter(index, name, int(value))
    except RuntimeError as err:
        raise ValueError(f"cannot set {name}={value} on {type(index).__name__}: {_last_line(err)}") from None


def index_bytes(index) -> int:
    """Memory of an index, as the size of its faiss serialisation.

    Flat indexes are not serialised (a second copy of the whole database): their size is the
    serialised empty index plus ``ntotal * code_size``, which is exactly what faiss would write.
    """
    if isinstance(index, faiss.IndexBinaryFlat):
        empty = faiss.IndexBinaryFlat(index.d)
        return int(faiss.serialize_index_binary(empty).size) + index.ntotal * index.code_size
    if isinstance(index, faiss.IndexBinary):
        return int(faiss.serialize_index_binary(index).size)
    if type(index) in (faiss.IndexFlat, faiss.IndexFlatL2, faiss.IndexFlatIP):
        empty = faiss.IndexFlat(index.d, index.metric_type)
        return int(faiss.serialize_index(empty).size) + index.ntotal * index.code_size
    return int(faiss.serialize_index(index).size)


#: Searches are repeated (at most QUICK_REPEATS runs) until they have taken QUICK_SEARCH_S in all,
#: and timed by their best run, so quick searches are not timed by one scheduling hiccup.
QUICK_SEARCH_S = 1.0
QUICK_REPEATS = 5


class FaissIndex:
    """A faiss index from a factory string: `fit` trains, `add` adds, `search` returns distances.

    Learned attributes: ``index_``, ``ntotal_``, ``train_time_``, ``add_time_``, ``search_time_``
    (best of ``search_repeats_`` runs: quick searches are repeated, see QUICK_SEARCH_S).
    """

    def __init__(
        self, factory: str = "Flat", metric: str = "L2", binary: bool = False, batch_size: int = 4096
    ):
        self.factory = factory
        self.metric = metric
        self.binary = binary
        self.batch_size = batch_size

    def fit(self, x: np.ndarray) -> FaissIndex:
        """Create the index for x's dimension and train it on x (a no-op for Flat)."""
        x = np.asarray(x)
        if x.ndim != 2 or len(x) == 0:
            raise ValueError(f"fit needs a non-empty 2-D array of vectors, got shape {x.shape}")
        dim = x.shape[1] * 8 if self.binary else x.shape[1]
        self.index_ = make_index(self.factory, dim, self.metric, self.binary)
        start = time.perf_counter()
        if not self.index_.is_trained:  # Flat needs no training: no normalised copy either
            self.index_.train(prepare(x[content_order(x)], self.metric))  # order-free: by content
        self.train_time_ = time.perf_counter() - start
        self.add_time_ = 0.0
        self.ntotal_ = 0
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "index_"):
            raise RuntimeError(f"this {type(self).__name__} is not fitted yet: call fit() first")

    def add(self, x: np.ndarray) -> FaissIndex:
        """Add database vectors (call once or once per block)."""
        self._check_fitted()
        x = prepare(x, self.metric)
        start = time.perf_counter()
        self.index_.add(x)
        self.add_time_ += time.perf_counter() - start
        self.ntotal_ = int(self.index_.ntotal)
        return self

    def set_param(self, name: str, value: int) -> FaissIndex:
        """Set a search-time parameter (``nprobe``, ``efSearch``)."""
        self._check_fitted()
        set_search_param(self.index_, name, value)
        return self

    def search(self, xq: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(D, I) of shape (nq, k): distances (smaller is closer) and database positions (-1: none).

        Rows are in `canonical_order` (ties by increasing id).
        """
        self._check_fitted()
        if k > self.ntotal_:
            raise ValueError(f"k={k} is larger than the database ({self.ntotal_} vectors)")
        xq = prepare(xq, self.metric)
        width = self.index_.code_size if self.binary else self.index_.d
        if xq.ndim != 2 or xq.shape[1] != width:
            raise ValueError(f"queries of shape {xq.shape} do not match the index (width {width})")
        D = np.empty((len(xq), k), np.float32)
        I = np.empty((len(xq), k), np.int64)
        times = []
        while not times or (sum(times) < QUICK_SEARCH_S and len(times) < QUICK_REPEATS):
            start = time.perf_counter()
            batches = range(0, len(xq), self.batch_size)
            bar = tqdm(
                batches, desc=f"search {self.factory}", unit="batch", disable=len(batches) < 3, leave=False
            )
            for s in bar:
                D[s : s + self.batch_size], I[s : s + self.batch_size] = self.index_.search(
                    xq[s : s + self.batch_size], k
                )
            times.append(time.perf_counter() - start)
        self.search_time_ = min(times)
        self.search_repeats_ = len(times)
        return canonical_order(to_distance(D, self.metric), I)

    def memory_bytes(self) -> int:
        """Bytes of the serialised index."""
        self._check_fitted()
        return index_bytes(self.index_)
