# ruff: noqa: E741  (D, I) is faiss's fixed name for k-NN distances and ids
"""Partial copies: (a) global descriptor, (b) + region descriptors, (c) + local verification, per family.

Builds a reduced demo set (every photograph, a third of the 58 classic attacks, every partial-copy
attack, BENCH_PARTIAL_DISTRACTORS procedural distractors) under ``Datasets/bench_partial/``, then for
a hash (phash, regions cut out and hashed) and EfficientNet-Lite0 (regions pooled from one forward
pass's patch tokens) prints recall@1 and recall at 1 % FPR (threshold on every negative query) per
attack family, and the cost of each stage per query: extraction, search, verification of the top
K candidates, plus memory (index, tokens, keypoints) and how search and verification grow with the
number of regions and with k. (c) is ORB + RANSAC (`fast_search.verify.KeypointVerifier`) on (b)'s
top-K; rows also give chamfer re-ranking over the tokens and ORB on (a)'s top-K.

    python -m imsim.benchmarks partial          # BENCH_PARTIAL_DISTRACTORS=300 BENCH_PARTIAL_K=10
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from data_retrieval.attacks import ATTACK_IDS, attack_family, split_attack_stem
from data_retrieval.partial_attacks import PARTIAL_ATTACK_IDS, PARTIAL_FAMILIES
from fast_search import metrics as M
from fast_search.index import FaissIndex
from fast_search.regions import RegionIndex
from fast_search.verify import KeypointVerifier, chamfer, rerank, verified_distance
from helpers.paths import DATASETS_DIR, FEATURES_DIR, RESULTS_DIR

N_DISTRACTORS = int(os.environ.get("BENCH_PARTIAL_DISTRACTORS", 300))
K = int(os.environ.get("BENCH_PARTIAL_K", 10))
CLASSIC = ATTACK_IDS[::3]  # 20 of the 58, every family but one represented
SMOKE = os.environ.get("BENCH_PARTIAL_SMOKE") == "1"  # 3 photos, 10 distractors: checks the script runs
ROOT = DATASETS_DIR / ("bench_partial_smoke" if SMOKE else "bench_partial")
FEATURES = FEATURES_DIR / ROOT.name
DATABASE = ["demo_distractors", "demo_original"]
QUERIES = ["demo_attacks", "demo_negatives"]
LAYOUT_ROWS = {"grid5": [0, 1, 2, 3, 4], "grid10": [0, *range(5, 14)], "grid14": list(range(14))}


def _build() -> None:
    from data_retrieval.demo import build_demo

    if SMOKE:
        build_demo(ROOT, n_distractors=10, attack_ids=[*CLASSIC[:3], *PARTIAL_ATTACK_IDS],
                   photos=["astronaut", "camera", "chelsea", "coins"], n_synthetic_negatives=1)
    else:
        build_demo(ROOT, n_distractors=N_DISTRACTORS, attack_ids=[*CLASSIC, *PARTIAL_ATTACK_IDS])


def _paths(datasets: list[str]) -> tuple[list[str], list[Path]]:
    from extractor.pipeline import _listing

    ids, paths = [], []
    for name in datasets:
        listing = _listing(name, ROOT, None)
        ids += list(listing.ids)
        paths += list(listing.paths)
    return ids, paths


def _ground_truth(db_ids: list[str], q_ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(targets, family) per query: the row of its original (-1 for a negative) and its attack family."""
    row = {i: r for r, i in enumerate(db_ids)}
    targets, families = [], []
    for q in q_ids:
        dataset, stem = q.split("/", 1)
        source, attack = split_attack_stem(stem)
        families.append(attack_family(attack))
        targets.append(row[f"demo_original/{source}"] if dataset == "demo_attacks" else -1)
    return np.array(targets, np.int64), np.array(families, dtype=object)


def _scores(D: np.ndarray, I: np.ndarray, targets: np.ndarray, families: np.ndarray) -> dict:
    """Recall@1 and recall at 1 % FPR (threshold on all negatives) per family, partial and classic pooled."""
    neg = targets < 0
    groups = {f: families == f for f in dict.fromkeys(families)}
    groups["ALL partial"] = np.isin(families, PARTIAL_FAMILIES)
    groups["ALL classic"] = ~groups["ALL partial"]
    out = {}
    for name, rows in groups.items():
        pos = rows & ~neg
        if not pos.any():
            continue
        sel = pos | neg
        out[name] = {"n": int(pos.sum()), "recall_at_1": M.recall_at_k(D[pos], I[pos], targets[pos], 1),
                     "recall_at_fpr_1pct": M.recall_at_fpr(D[sel], I[sel], targets[sel], 0.01)[0]}
    return out


class _Timer:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def add(self, stage: str, seconds: float) -> None:
        self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds


def _global(method: str, timer: _Timer):
    from extractor import create_extractor, extract_dataset, load_features

    ext = create_extractor(method)
    for dataset in DATABASE + QUERIES:
        start = time.perf_counter()
        extract_dataset(ext, dataset, FEATURES, ROOT, batch_size=64, if_changed="redo", progress=True)
        if dataset in QUERIES:
            timer.add("extract global", time.perf_counter() - start)
    db = [load_features(d, ext.name, FEATURES) for d in DATABASE]
    qs = [load_features(d, ext.name, FEATURES) for d in QUERIES]
    return ext, (np.concatenate([f.ids for f in db]).tolist(), np.concatenate([f.features for f in db]),
                 np.concatenate([f.ids for f in qs]).tolist(), np.concatenate([f.features for f in qs]))


def _regions(describer, datasets: list[str], timer: _Timer | None, ids: list[str]):
    """Region features and boxes of `datasets`, rows owned by the position of their image in `ids`."""
    from extractor.regions import extract_regions, load_regions

    feats, owners = [], []
    row = {i: r for r, i in enumerate(ids)}
    for dataset in datasets:
        start = time.perf_counter()
        path = extract_regions(describer, dataset, FEATURES, ROOT, batch_images=16)
        if timer is not None:
            timer.add("extract regions", time.perf_counter() - start)
        reg = load_regions(path)
        feats.append(reg.features)
        owners.append(np.array([row[reg.ids[o]] for o in reg.owner], np.int64))
    return np.concatenate(feats), np.concatenate(owners)


def _tokens(method: str, timer: _Timer, db_ids: list[str], q_ids: list[str]):
    """Patch tokens (float16 store, square input: nothing cropped away) of the database and query images."""
    from extractor import create_extractor
    from extractor.local_store import LocalFeatures, extract_local, tokens_path
    from extractor.regions import RegionDescriber

    ext = RegionDescriber(create_extractor(method, pooling="local"), "global", mode="tokens").extractor
    out = []
    for datasets, ids in ((DATABASE, db_ids), (QUERIES, q_ids)):
        found = {}
        for dataset in datasets:
            start = time.perf_counter()
            extract_local(ext, dataset, FEATURES, ROOT, batch_size=16, dtype="float16")
            if datasets is QUERIES:
                timer.add("extract tokens", time.perf_counter() - start)
            with LocalFeatures(tokens_path(dataset, ext.name, FEATURES)) as store:
                for j, i in enumerate(store.ids):
                    t = store.tokens(j).astype(np.float32)
                    found[i] = t / np.maximum(np.linalg.norm(t, axis=1, keepdims=True), 1e-12)
        out.append([found[i] for i in ids])
    return out


def _select(feats: np.ndarray, owner: np.ndarray, per_image: int, keep: list[int]):
    """Keep region rows `keep` (positions within each image's `per_image` rows)."""
    mask = np.isin(np.arange(len(owner)) % per_image, keep)
    return feats[mask], owner[mask]


def run_method(method: str, verifier: KeypointVerifier, keypoints: dict) -> dict:
    """Every stage for one method; returns scores and costs."""
    from extractor.regions import RegionDescriber, pool_tokens, region_boxes

    timer = _Timer()
    ext, (db_ids, xb, q_ids, xq) = _global(method, timer)
    targets, families = _ground_truth(db_ids, q_ids)
    metric = "hamming" if ext.binary else "cosine"
    nq = len(q_ids)
    index = FaissIndex("BFlat" if ext.binary else "Flat", metric, ext.binary).fit(xb).add(xb)
    D_a, I_a = index.search(xq, K + 1)
    timer.add("search global", index.search_time_)
    results = {"a": (D_a, I_a)}

    tokens = None
    if ext.binary:  # hashes: each region cut out and hashed
        describer = RegionDescriber(ext, "grid14", mode="crops")
        rb, ob = _regions(describer, DATABASE, None, db_ids)
        rq, oq = _regions(describer, QUERIES, timer, q_ids)
    else:  # neural: one forward pass gives the tokens; regions pool them, chamfer compares them
        tokens = _tokens(method, timer, db_ids, q_ids)
        boxes = region_boxes("grid14")
        start = time.perf_counter()
        rq = np.concatenate([pool_tokens(t, boxes) for t in tokens[1]])
        timer.add("pool regions", time.perf_counter() - start)
        rb = np.concatenate([pool_tokens(t, boxes) for t in tokens[0]])
        ob = np.repeat(np.arange(len(db_ids)), len(boxes))
        oq = np.repeat(np.arange(nq), len(boxes))
    growth = {}
    for layout, keep in LAYOUT_ROWS.items():
        fb, wb = _select(rb, ob, 14, keep)
        fq, wq = _select(rq, oq, 14, keep)
        rindex = RegionIndex("BFlat" if ext.binary else "Flat", metric, ext.binary).fit(fb, wb)
        start = time.perf_counter()
        D, I = rindex.search(fq, wq, nq, K + 1)
        seconds = time.perf_counter() - start
        growth[layout] = {"regions": len(keep), "search_ms_per_query": 1000 * seconds / nq,
                          "index_bytes": rindex.nbytes, "scores": _scores(D, I, targets, families)}
        if layout == "grid14":
            results["b"] = (D, I)
            timer.add("search regions", seconds)

    # (c) keypoint verification of (b)'s top K; also of (a)'s top K.
    db_paths = dict(zip(*_paths(DATABASE), strict=True))
    q_paths = dict(zip(*_paths(QUERIES), strict=True))
    from helpers.images import load_image

    def db_keypoints(r: int):
        if db_ids[r] not in keypoints:
            keypoints[db_ids[r]] = verifier.describe(load_image(db_paths[db_ids[r]]))
        return keypoints[db_ids[r]]

    for r in tqdm(sorted({int(i) for i in np.concatenate([results["b"][1][:, :K], I_a[:, :K]]).ravel() if i >= 0}),
                  desc="database keypoints", unit="img"):
        db_keypoints(r)
    query_kp, pair_s, pairs = [], 0.0, 0
    start = time.perf_counter()
    for q in tqdm(q_ids, desc=f"{method} query keypoints", unit="img"):
        query_kp.append(verifier.describe_query(load_image(q_paths[q])))
    describe_s = time.perf_counter() - start
    verified = {}

    def distance(q: int, r: int, d: float) -> float:
        nonlocal pair_s, pairs
        if (q, r) not in verified:
            t = time.perf_counter()
            verified[(q, r)] = verifier.verify(query_kp[q], keypoints[db_ids[r]]).inliers
            pair_s += time.perf_counter() - t
            pairs += 1
        return float(verified_distance(verified[(q, r)], d, verifier.min_inliers))

    for stage, (D, I) in (("c", results["b"]), ("a+verify", results["a"])):
        results[stage] = rerank(D[:, :K], I[:, :K], distance, progress=True)
        results[stage] = tuple(np.hstack([x, np.full((nq, 1), fill, x.dtype)]) for x, fill in
                               zip(results[stage], (np.inf, -1), strict=True))
    timer.add("verify: query keypoints", describe_s)
    timer.add("verify: match top-k", pair_s / max(pairs, 1) * K * nq)

    if tokens is not None:  # chamfer over the tokens of the same forward pass
        D, I = results["b"]
        start = time.perf_counter()
        results["b+chamfer"] = rerank(D[:, :K], I[:, :K], lambda q, r, d: -chamfer(tokens[1][q], tokens[0][r]),
                                      progress=True)
        timer.add("chamfer top-k", time.perf_counter() - start)
        results["b+chamfer"] = tuple(np.hstack([x, np.full((nq, 1), fill, x.dtype)]) for x, fill in
                                     zip(results["b+chamfer"], (np.inf, -1), strict=True))

    from helpers.atomic import save_npz

    pairs_q = np.array([q for q, _ in verified], np.int64)
    pairs_r = np.array([r for _, r in verified], np.int64)
    save_npz(RESULTS_DIR / f"{ROOT.name}-{method}.npz", targets=targets, families=families.astype(str),
             pairs_q=pairs_q, pairs_r=pairs_r, inliers=np.array(list(verified.values()), np.int64),
             **{f"D_{k}": v[0] for k, v in results.items()}, **{f"I_{k}": v[1] for k, v in results.items()})
    scores = {stage: _scores(D, I, targets, families) for stage, (D, I) in results.items()}
    kp_bytes = sum(k.nbytes for k in keypoints.values()) / max(len(keypoints), 1)
    cost = {stage: 1000 * s / nq for stage, s in timer.seconds.items()}
    return {"method": method, "n_queries": nq, "n_database": len(db_ids), "scores": scores, "ms_per_query": cost,
            "region_growth": growth, "index_bytes_global": index.memory_bytes(),
            "keypoint_bytes_per_image": kp_bytes, "pair_verify_ms": 1000 * pair_s / max(pairs, 1)}


def _fmt(value: float | None) -> str:
    return "n/a" if value is None or value != value else f"{value:.3f}"


def _print(result: dict) -> None:
    stages = [s for s in ("a", "b", "c", "a+verify", "b+chamfer") if s in result["scores"]]
    print(f"\n{result['method']}: {result['n_queries']} queries, {result['n_database']} database images, K={K}")
    print("| family | n | " + " | ".join(f"R@1 {s}" for s in stages) + " | "
          + " | ".join(f"R@1%FPR {s}" for s in stages) + " |")
    print("|---" * (2 + 2 * len(stages)) + "|")
    families = list(result["scores"]["a"])
    for f in families:
        row = [result["scores"][s].get(f, {}) for s in stages]
        cells = [_fmt(r.get("recall_at_1")) for r in row]
        cells += [_fmt(r.get("recall_at_fpr_1pct")) for r in row]
        print(f"| {f} | {result['scores']['a'][f]['n']} | " + " | ".join(cells) + " |")
    print("\ncost per query (ms): " + ", ".join(f"{k} {v:.1f}" for k, v in result["ms_per_query"].items()))
    print(f"verification of one pair: {result['pair_verify_ms']:.1f} ms (grows linearly with k); keypoints "
          f"{result['keypoint_bytes_per_image'] / 1024:.1f} KiB per database image; global index "
          f"{result['index_bytes_global'] / 1024:.0f} KiB")
    for layout, g in result["region_growth"].items():
        s = g["scores"]
        print(f"regions {layout} ({g['regions']} per image): search {g['search_ms_per_query']:.2f} ms/query, "
              f"index {g['index_bytes'] / 1024:.0f} KiB, partial R@1 {s['ALL partial']['recall_at_1']:.3f} "
              f"R@1%FPR {_fmt(s['ALL partial']['recall_at_fpr_1pct'])}, classic R@1 "
              f"{s['ALL classic']['recall_at_1']:.3f}")


def main() -> None:
    start = time.perf_counter()
    _build()
    print(f"bench set built in {time.perf_counter() - start:.0f} s under {ROOT}")
    verifier = KeypointVerifier()
    keypoints: dict = {}
    out = []
    for method in ("phash", "efficientnet_lite0"):
        try:
            result = run_method(method, verifier, keypoints)
        except (FileNotFoundError, ValueError) as err:
            print(f"{method}: skipped ({err})")
            continue
        _print(result)
        out.append(result)
    print("\nsscd: no trained SSCD checkpoint is available offline (finetune.py --recipe sscd makes one): not measured")
    from helpers.atomic import write_json

    path = RESULTS_DIR / f"{ROOT.name}.json"
    write_json(path, out, default=float)
    print(f"written {path}")


if __name__ == "__main__":
    main()
