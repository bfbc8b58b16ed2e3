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
KS = sorted({5, K, 20})  # verification of the global top k, k in KS (growth with k)
CLASSIC = ATTACK_IDS[::3]  # 20 of the 58, every family but one represented
SMOKE = os.environ.get("BENCH_PARTIAL_SMOKE") == "1"  # 3 photos, 30 distractors: checks the script runs
ROOT = DATASETS_DIR / ("bench_partial_smoke" if SMOKE else "bench_partial")
FEATURES = FEATURES_DIR / ROOT.name
DATABASE = ["demo_distractors", "demo_original"]
QUERIES = ["demo_attacks", "demo_negatives"]
LAYOUT_ROWS = {"grid5": [0, 1, 2, 3, 4], "grid10": [0, *range(5, 14)], "grid14": list(range(14))}


def _build() -> None:
    from data_retrieval.demo import build_demo

    if SMOKE:
        build_demo(ROOT, n_distractors=30, attack_ids=[*CLASSIC[:3], *PARTIAL_ATTACK_IDS],
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
        extract_dataset(ext, dataset, FEATURES, ROOT, batch_size=64, if_changed="redo", progress=True)
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
        path = extract_regions(describer, dataset, FEATURES, ROOT, batch_images=16)
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
            extract_local(ext, dataset, FEATURES, ROOT, batch_size=16, dtype="float16")
            with LocalFeatures(tokens_path(dataset, ext.name, FEATURES)) as store:
                for j, i in enumerate(store.ids):
                    t = store.tokens(j).astype(np.float32)
                    found[i] = t / np.maximum(np.linalg.norm(t, axis=1, keepdims=True), 1e-12)
        out.append([found[i] for i in ids])
    return out, ext


def _select(feats: np.ndarray, owner: np.ndarray, per_image: int, keep: list[int]):
    """Keep region rows `keep` (positions within each image's `per_image` rows)."""
    mask = np.isin(np.arange(len(owner)) % per_image, keep)
    return feats[mask], owner[mask]


SAMPLE = 48  # query images whose extraction is timed (stores may already hold every feature)


def _extract_ms(describe, paths: list[Path]) -> float:
    """Milliseconds per image of `describe(images)` on SAMPLE query images, in batches of 16, decoding excluded."""
    from helpers.images import load_image

    images = [load_image(p) for p in paths[:SAMPLE]]
    describe(images[:2])  # warm-up
    start = time.perf_counter()
    for i in range(0, len(images), 16):
        describe(images[i:i + 16])
    return 1000 * (time.perf_counter() - start) / len(images)


def _growth(rindex, fq, wq, whole, nq: int, targets, families, regions: int) -> dict:
    """Search time, index memory and scores of one region configuration."""
    start = time.perf_counter()
    D, I = rindex.search(fq, wq, nq, K + 1, whole)
    return {"regions": regions, "search_ms_per_query": 1000 * (time.perf_counter() - start) / nq,
            "index_bytes": rindex.nbytes, "scores": _scores(D, I, targets, families)}


def _region_stage(method: str, ext, metric: str, db_ids, q_ids, timer: _Timer, targets, families):
    """(b): region search results, its growth with the number of regions, and the tokens tried first."""
    from extractor.regions import RegionDescriber, pool_tokens, region_boxes

    nq = len(q_ids)
    # (b) regions cut out and described (grid5: the whole image + 2 x 2 windows of 0.6), a whole image on
    # one side of each pair; growth: more regions, and region-region pairs too.
    whole_q = np.arange(nq * 5) % 5 == 0
    whole_b = np.arange(len(db_ids) * 5) % 5 == 0
    if ext.binary:  # hashes: grid14 cut out once, grid5 = its first 5 rows
        describer = RegionDescriber(ext, "grid14", mode="crops")
        rb14, ob14 = _regions(describer, DATABASE, None, db_ids)
        rq14, oq14 = _regions(describer, QUERIES, timer, q_ids)
        rb, ob = _select(rb14, ob14, 14, LAYOUT_ROWS["grid5"])
        rq, oq = _select(rq14, oq14, 14, LAYOUT_ROWS["grid5"])
    else:
        describer = RegionDescriber(ext, "grid5", mode="crops")
        rb, ob = _regions(describer, DATABASE, None, db_ids)
        rq, oq = _regions(describer, QUERIES, timer, q_ids)
    rindex = RegionIndex("BFlat" if ext.binary else "Flat", metric, ext.binary).fit(rb, ob, whole_b)
    start = time.perf_counter()
    found = rindex.search(rq, oq, nq, K + 1, whole_q)
    timer.add("search regions", time.perf_counter() - start)
    growth = {"crops grid5, whole pairs": _growth(rindex, rq, oq, whole_q, nq, targets, families, 5)}
    growth["crops grid5, all pairs"] = _growth(
        RegionIndex(rindex.factory, metric, ext.binary, pairs="all").fit(rb, ob), rq, oq, None, nq, targets,
        families, 5)
    tokens = token_ext = None
    if ext.binary:
        for layout in ("grid10", "grid14"):
            keep = LAYOUT_ROWS[layout]
            fb, wb = _select(rb14, ob14, 14, keep)
            fq, wq = _select(rq14, oq14, 14, keep)
            w_b, w_q = np.arange(len(wb)) % len(keep) == 0, np.arange(len(wq)) % len(keep) == 0
            growth[f"crops {layout}, whole pairs"] = _growth(
                RegionIndex("BFlat", metric, True).fit(fb, wb, w_b), fq, wq, w_q, nq, targets, families, len(keep))
    else:  # what was tried first: regions pooled from one forward pass's patch tokens (cheap, weak)
        tokens, token_ext = _tokens(method, timer, db_ids, q_ids)
        for layout, keep in LAYOUT_ROWS.items():
            boxes = region_boxes(layout)
            fb = np.concatenate([pool_tokens(t, boxes) for t in tokens[0]])
            fq = np.concatenate([pool_tokens(t, boxes) for t in tokens[1]])
            wb, wq = np.repeat(np.arange(len(db_ids)), len(keep)), np.repeat(np.arange(nq), len(keep))
            growth[f"tokens {layout}, all pairs"] = _growth(
                RegionIndex("Flat", metric, pairs="all").fit(fb, wb), fq, wq, None, nq, targets, families, len(keep))
    return found, growth, tokens, token_ext


def _save(method: str, results: dict, verified: dict, targets, families) -> None:
    """Every stage's (D, I) and the verified pairs' inliers, for a later look."""
    from helpers.atomic import save_npz

    pairs_q = np.array([q for q, _ in verified], np.int64)
    pairs_r = np.array([r for _, r in verified], np.int64)
    save_npz(RESULTS_DIR / f"{ROOT.name}-{method}.npz", targets=targets, families=families.astype(str),
             pairs_q=pairs_q, pairs_r=pairs_r, inliers=np.array(list(verified.values()), np.int64),
             **{f"D_{k}": v[0] for k, v in results.items()}, **{f"I_{k}": v[1] for k, v in results.items()})


def run_method(method: str, verifier: KeypointVerifier, keypoints: dict) -> dict:
    """Every stage for one method; returns scores and costs."""
    from extractor.regions import RegionDescriber

    timer = _Timer()
    ext, (db_ids, xb, q_ids, xq) = _global(method, timer)
    targets, families = _ground_truth(db_ids, q_ids)
    metric = "hamming" if ext.binary else "cosine"
    nq = len(q_ids)
    index = FaissIndex("BFlat" if ext.binary else "Flat", metric, ext.binary).fit(xb).add(xb)
    D_a, I_a = index.search(xq, max(KS) + 1)
    timer.add("search global", index.search_time_)
    results = {"a": (D_a, I_a)}

    results["b"], growth, tokens, token_ext = _region_stage(method, ext, metric, db_ids, q_ids, timer, targets,
                                                            families)

    # (c) keypoint verification of (b)'s top K; also of (a)'s top K.
    from helpers.images import load_image

    db_paths, q_paths = (dict(zip(*_paths(d), strict=True)) for d in (DATABASE, QUERIES))

    def db_keypoints(r: int):
        if db_ids[r] not in keypoints:
            keypoints[db_ids[r]] = verifier.describe(load_image(db_paths[db_ids[r]]))
        return keypoints[db_ids[r]]

    shown = np.concatenate([results["b"][1][:, :K].ravel(), I_a[:, :max(KS)].ravel()])
    for r in tqdm(sorted({int(i) for i in shown if i >= 0}), desc="database keypoints", unit="img"):
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

    sample = [q_paths[q] for q in q_ids[:: max(1, nq // SAMPLE)]]
    cost_ms = {"extract global": _extract_ms(ext.features, sample),
               "extract regions": _extract_ms(RegionDescriber(ext, "grid5", mode="crops").describe, sample)}
    if tokens is not None:
        cost_ms["extract tokens (chamfer)"] = _extract_ms(token_ext.local_features, sample)
    by_k = {}
    for stage, (D, I), k in (("c", results["b"], K), *((f"a+verify k={k}", results["a"], k) for k in KS)):
        out = rerank(D[:, :k], I[:, :k], distance, progress=True)
        out = tuple(np.hstack([x, np.full((nq, 1), fill, x.dtype)]) for x, fill in zip(out, (np.inf, -1), strict=True))
        if stage == "c" or k == K:
            results["a+verify" if k == K and stage != "c" else stage] = out
        if stage != "c":
            by_k[k] = _scores(*out, targets, families)["ALL partial"] | {"classic": _scores(
                *out, targets, families)["ALL classic"]}
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

    _save(method, results, verified, targets, families)
    scores = {stage: _scores(D, I, targets, families) for stage, (D, I) in results.items()}
    kp_bytes = sum(k.nbytes for k in keypoints.values()) / max(len(keypoints), 1)
    cost = {**cost_ms, **{stage: 1000 * s / nq for stage, s in timer.seconds.items()}}
    return {"method": method, "n_queries": nq, "n_database": len(db_ids), "scores": scores, "ms_per_query": cost,
            "region_growth": growth, "index_bytes_global": index.memory_bytes(),
            "keypoint_bytes_per_image": kp_bytes, "pair_verify_ms": 1000 * pair_s / max(pairs, 1),
            "verify_by_k": by_k}


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
    for k, v in result["verify_by_k"].items():
        print(f"ORB on the global top {k}: partial R@1 {_fmt(v['recall_at_1'])} R@1%FPR {_fmt(v['recall_at_fpr_1pct'])}, "
              f"classic R@1 {_fmt(v['classic']['recall_at_1'])} R@1%FPR {_fmt(v['classic']['recall_at_fpr_1pct'])}; "
              f"{k * result['pair_verify_ms']:.0f} ms per query")
    for layout, g in result["region_growth"].items():
        s = g["scores"]
        print(f"regions {layout} ({g['regions']} per image): search {g['search_ms_per_query']:.2f} ms/query, "
              f"index {g['index_bytes'] / 1024:.0f} KiB, partial R@1 {s['ALL partial']['recall_at_1']:.3f} "
              f"R@1%FPR {_fmt(s['ALL partial']['recall_at_fpr_1pct'])}, classic R@1 "
              f"{s['ALL classic']['recall_at_1']:.3f}")


def main() -> list[dict]:
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
    return out


if __name__ == "__main__":
    main()
