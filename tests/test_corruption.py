"""Every kind of file the library writes, read back after byte flips: an error naming the file, or a
rebuild that gives the same numbers; never other numbers.

Kinds: feature store (.h5), local token store (.tokens.h5), a partial store being resumed, results
(runs/*.npz, ids.npz), an on-disk IVF index (merged.index, merged.ivfdata), the app's saved index.
Each file gets `FLIPS` single-bit flips at seeded positions spread over it, one at a time.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from extractor.store import FeatureWriter, load_features, store_path, write_features

FLIPS = 12


def positions(path: Path, n: int = FLIPS, seed: int = 0) -> list[int]:
    """`n` byte offsets spread over the file: one in each of n equal parts (seeded)."""
    size = path.stat().st_size
    rng = np.random.default_rng(seed)
    edges = np.linspace(0, size, n + 1).astype(int)
    return sorted({int(rng.integers(a, max(a + 1, b))) for a, b in zip(edges[:-1], edges[1:], strict=True)})


def flipped(path: Path, pos: int, bit: int = 0x04) -> bytes:
    """Flip one bit of `path` at `pos`; returns the original bytes (to restore)."""
    good = path.read_bytes()
    data = bytearray(good)
    data[pos] ^= bit
    path.write_bytes(bytes(data))
    return good


def same(a, b) -> bool:
    if isinstance(a, (tuple, list)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a, b)
    return a == b


def check_every_flip(path: Path, read: Callable[[], object], names: tuple[str, ...] = ()) -> dict[str, int]:
    """Flip each position of `path` in turn and `read`: an error must name the file (or one of
    `names`), a result must equal the undamaged one. Returns how many flips ended each way."""
    want = read()
    outcome = {"named error": 0, "same numbers": 0}
    for pos in positions(path):
        good = flipped(path, pos)
        try:
            got = read()
        except (ValueError, OSError, RuntimeError) as err:  # StoreError, ChecksumError, faiss
            message = str(err)
            assert "Traceback" not in message and len(message.splitlines()) == 1, message
            assert any(n in message for n in (path.name, *names)), f"byte {pos}: {message}"
            outcome["named error"] += 1
        else:
            assert same(got, want), f"{path.name}: a flip at byte {pos} of {path.stat().st_size} gave other numbers"
            outcome["same numbers"] += 1
        finally:
            path.write_bytes(good)
    assert same(read(), want)
    return outcome


def _float_rows(n: int = 300, dim: int = 8, seed: int = 0) -> tuple[list[str], np.ndarray]:
    rng = np.random.default_rng(seed)
    return [f"d/{i}" for i in range(n)], rng.standard_normal((n, dim)).astype(np.float32)


def test_feature_store(tmp_path):
    ids, x = _float_rows()
    path = write_features(store_path("d", "feat", tmp_path), ids, x, method="feat", chunk_rows=64)

    def read():
        f = load_features(path)
        return f.ids.tolist(), f.features, f.dim, f.binary

    check_every_flip(path, read)


def test_token_store(tmp_path):
    from extractor.local_store import LocalFeatures, LocalWriter

    rng = np.random.default_rng(0)
    path = tmp_path / "d" / "m.tokens.h5"
    rows = [(f"d/{i}", rng.standard_normal((int(rng.integers(1, 9)), 8)).astype(np.float32)) for i in range(60)]
    with LocalWriter(path, method="m", dim=8, n_total=60, chunk_tokens=32) as w:
        w.append([i for i, _ in rows], [t for _, t in rows])
        w.finish()

    def read():
        with LocalFeatures(path) as lf:
            return [(i, t) for i, t in lf.iter_tokens(block_tokens=50)]

    check_every_flip(path, read)


def test_partial_store_resumed(tmp_path):
    ids, x = _float_rows()
    want = load_features(write_features(tmp_path / "full" / "feat.h5", ids, x, method="feat"))
    out = tmp_path / "d" / "feat.h5"
    partial = out.with_name(out.name + ".partial")
    kw = dict(method="feat", dim=8, n_total=len(ids), chunk_rows=64, provenance={"files_sha1": "x"})
    with FeatureWriter(out, **kw) as w:
        for start in range(0, 200, 50):
            w.append(ids[start:start + 50], x[start:start + 50])
    started = partial.read_bytes()

    def resume_and_finish():
        out.unlink(missing_ok=True)
        partial.write_bytes(started_now[0])
        with FeatureWriter(out, **kw) as w:
            begin = w.n_seen
            w.append(ids[begin:], x[begin:])
            w.finish()
        f = load_features(out)
        return f.ids.tolist(), f.features

    started_now = [started]
    assert same(resume_and_finish(), (want.ids.tolist(), want.features))
    caught = 0
    for pos in positions(_probe(tmp_path, started)):
        damaged = bytearray(started)
        damaged[pos] ^= 0x04
        started_now[0] = bytes(damaged)
        try:
            got = resume_and_finish()
        except (ValueError, OSError) as err:
            assert partial.name in str(err) or out.name in str(err), str(err)
            caught += 1
        else:
            assert same(got, (want.ids.tolist(), want.features)), f"a flip at byte {pos} of the partial gave other numbers"


def _probe(tmp_path: Path, data: bytes) -> Path:
    """A file of the partial's size, for `positions`."""
    probe = tmp_path / "probe"
    probe.write_bytes(data)
    return probe


def test_results_npz(tmp_path):
    from fast_search.results import load_ids, load_run
    from tests.fast_search.conftest import make_stores
    from tests.fast_search.test_experiment import _run

    stores = make_stores(tmp_path / "Features")
    res = _run(stores, tmp_path, indexes=["Flat"], metrics=["L2"])
    folder = tmp_path / "R" / "exp"
    check_every_flip(folder / res["runs"][0]["file"], lambda: load_run(folder, res["runs"][0]))
    check_every_flip(folder / "ids.npz", lambda: sorted(load_ids(folder, res).items()))


@pytest.mark.parametrize("name", ["merged.index", "merged.ivfdata"])
def test_ondisk_ivf(tmp_path, name):
    import faiss

    from fast_search.block import array_blocks
    from fast_search.index import prepare
    from fast_search.ondisk import build_ondisk, open_ondisk

    rng = np.random.default_rng(0)
    xb, xq = rng.standard_normal((2000, 16)).astype(np.float32), rng.standard_normal((20, 16)).astype(np.float32)
    build_ondisk("IVF8,Flat", "L2", array_blocks(xb, 700), xb[::2], tmp_path / "ivf", shard_rows=1000)

    def read():
        index = open_ondisk(tmp_path / "ivf")
        faiss.extract_index_ivf(index).nprobe = 8
        return index.search(prepare(xq, "L2"), 5)

    check_every_flip(tmp_path / "ivf" / name, read)


def test_app_index(tmp_path, caplog):
    from imsim.app import Collection

    rng = np.random.default_rng(0)
    features = tmp_path / "Features"
    for name, n in (("orig", 120), ("dist", 200)):
        write_features(store_path(name, "phash", features), [f"{name}/{i}" for i in range(n)],
                       rng.integers(0, 256, (n, 8), dtype=np.uint8), method="phash", binary=True, dim=64)
    queries = rng.integers(0, 256, (30, 8), dtype=np.uint8)
    first = Collection("phash", ["orig", "dist"], index="BIVF4", features_root=features)
    path = first.index_path

    def read():
        c = Collection("phash", ["orig", "dist"], index="BIVF4", features_root=features)
        return c.search_features(queries, 5)

    shutil.copy(path, tmp_path / "good.faiss")
    check_every_flip(path, read)  # every damaged copy is rebuilt (the rebuild rewrites the file)
