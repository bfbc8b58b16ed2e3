# ruff: noqa: E741  (D, I) is faiss's fixed name for k-NN distances and ids
"""The leak-free protocol every training recipe (SimCLR, SSCD, adaptation) is scored under.

1. **Disjointness** (`check_disjoint`, `check_attacks`): no training image is an evaluation image
   (same file or same bytes), and no scored query was made by an attack family that training
   applies: the catalogue's attacks mostly ignore their seed (only noise, text and a few extras
   draw anything), so a family seen in training with "another seed" would regenerate the very
   query images. Evaluation therefore scores held-out families only, verified per query.
2. **Validation / test** (`split_groups`): queries are split by the image they come from (a
   positive by its original, a negative by its source photograph or procedural picture), about a
   third to validation. Settings (the epoch, the run) are chosen on validation; the final table
   is computed on test only and says so.
3. **Uncertainty** (`bootstrap_ci`): a 95 % percentile interval over queries (positives and
   negatives resampled separately, so their counts stay fixed).
4. **Enough negatives**: a recall at 1 % FPR rests on at least 1,000 negative queries
   (`MIN_NEGATIVES_1PCT`); with fewer it is reported as None.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from data_retrieval.attacks import ATTACK_IDS, attack_family, derive_seed, query_attack, split_attack_stem
from data_retrieval.datasets import image_generator, split_id

#: A 1 % FPR figure needs at least this many negatives (below, one or two false positives decide it).
MIN_NEGATIVES_1PCT = 1000
#: Share of the source groups that go to validation (the rest is the test split of the final table).
VALIDATION_SHARE = 1 / 3
#: Bootstrap resamples and interval.
N_BOOTSTRAP = 1000
CONFIDENCE = 0.95


def _sha1(path: str | os.PathLike) -> str:
    digest = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_disjoint(train_paths: Sequence[os.PathLike], eval_paths: Sequence[os.PathLike]) -> dict:
    """Raise ValueError when a training image is also an evaluation image (same file or same bytes).

    Returns what was checked (counts), for the run's split.json.
    """
    train = {Path(p).resolve() for p in train_paths}
    shared = train & {Path(p).resolve() for p in eval_paths}
    if shared:
        raise ValueError(f"{len(shared)} training images are also evaluation images, e.g. {sorted(map(str, shared))[:3]}")
    train_hashes = {_sha1(p): p for p in sorted(train)}
    same = [(str(train_hashes[h]), str(p)) for p in eval_paths if (h := _sha1(p)) in train_hashes]
    if same:
        raise ValueError(f"{len(same)} training images have the same bytes as evaluation images, e.g. {same[:3]}")
    return {"n_train_images": len(train), "n_eval_images": len(eval_paths), "by": "path and sha1 of the bytes"}


def heldout_families(train_families: Sequence[str]) -> list[str]:
    """Catalogue families that training never applies, in catalogue order."""
    seen = set(train_families)
    return list(dict.fromkeys(attack_family(a) for a in ATTACK_IDS if attack_family(a) not in seen))


def check_attacks(query_ids: Sequence[str], train_families: Sequence[str]) -> dict:
    """Raise ValueError when a scored positive query was made by a family that training applies; returns the record."""
    seen = set(train_families)
    leaked = sorted({a for q in query_ids if (a := query_attack(q)) is not None and attack_family(a) in seen})
    if leaked:
        raise ValueError(
            f"{len(leaked)} attack ids of the scored queries belong to families that training applies "
            f"({', '.join(leaked[:5])}...): score held-out families only (most attacks ignore their seed, so "
            "training would regenerate these queries)"
        )
    families = sorted({attack_family(a) for q in query_ids if (a := query_attack(q)) is not None})
    return {"train_families": sorted(seen), "scored_families": families, "shared_families": []}


def check_pairs_disjoint(
    queries: np.ndarray, originals: np.ndarray, groups: np.ndarray, train_idx: np.ndarray, test_idx: np.ndarray,
    families: np.ndarray | None = None,
) -> dict:
    """The adaptation recipe's check: no original, no attack family and no feature row (an image's
    bytes give its row) on both sides of a split; raises ValueError naming what is shared."""
    shared = np.intersect1d(groups[train_idx], groups[test_idx])
    if len(shared):
        raise ValueError(f"{len(shared)} originals have pairs on both sides of the split")
    if families is not None:
        both = sorted(set(families[train_idx]) & set(families[test_idx]))
        if both:
            raise ValueError(f"attack families {both[:5]} are both trained on and scored")
    rows = lambda x, idx: {np.ascontiguousarray(r).tobytes() for r in x[idx]}  # noqa: E731
    train_rows = rows(queries, train_idx) | rows(originals, train_idx)
    same = len(train_rows & (rows(queries, test_idx) | rows(originals, test_idx)))
    if same:
        raise ValueError(f"{same} test images have the features of a training image (the same image on both sides)")
    return {
        "originals": "disjoint", "feature_rows": "disjoint",
        "families": None if families is None else {"train": sorted(set(families[train_idx])),
                                                   "test": sorted(set(families[test_idx]))},
    }  # fmt: skip


def source_group(image_id: str, positive: bool, original_id: str | None = None) -> str:
    """The image a query comes from: its original for a positive, its photograph or picture for a negative."""
    if positive and original_id is not None:
        return f"original:{original_id}"
    generator = image_generator(image_id)
    if generator is not None and generator.startswith("photo:"):
        return generator
    stem = split_id(image_id)[1].rpartition("/")[2]
    found = split_attack_stem(stem)
    return f"picture:{found[0] if found else stem}"


def split_groups(groups: Sequence[str], share: float = VALIDATION_SHARE, seed: int = 0) -> np.ndarray:
    """True for the rows whose group falls in validation.

    Within each kind of group (``original:``, ``photo:``, ``picture:``) the distinct groups are
    ordered by a stable hash of their name (never by position or file order) and the first
    ``round(share * n)`` go to validation, so even five held-out photographs split 2 / 3.
    """
    chosen: set[str] = set()
    by_kind: dict[str, list[str]] = {}
    for g in set(groups):
        by_kind.setdefault(g.partition(":")[0], []).append(g)
    for members in by_kind.values():
        ranked = sorted(members, key=lambda g: (derive_seed(seed, "validation", g), g))
        chosen.update(ranked[: round(share * len(ranked))])
    return np.array([g in chosen for g in groups], dtype=bool)


def bootstrap_ci(
    measure: Callable[[np.ndarray], float],
    positive: np.ndarray,
    n: int = N_BOOTSTRAP,
    confidence: float = CONFIDENCE,
    seed: int = 0,
) -> tuple[float | None, float | None]:
    """Percentile interval of ``measure(rows)`` over query resamples (positives and negatives apart).

    `measure` takes an index array of query rows (repeats allowed) and returns a float or None.
    """
    if n < 1:
        return None, None
    rng = np.random.default_rng(seed)
    pos, neg = np.flatnonzero(positive), np.flatnonzero(~positive)
    values = []
    for _ in range(n):
        rows = np.concatenate([rng.choice(pos, len(pos)) if len(pos) else pos, rng.choice(neg, len(neg)) if len(neg) else neg])
        value = measure(rows)
        if value is not None and np.isfinite(value):
            values.append(value)
    if len(values) < n // 2:
        return None, None
    lo, hi = np.percentile(values, [50 * (1 - confidence), 50 * (1 + confidence)])
    return float(lo), float(hi)


def copy_measures(D: np.ndarray, I: np.ndarray, positives: np.ndarray) -> dict[str, float | None]:
    """recall@1, recall at 1 % FPR (None under `MIN_NEGATIVES_1PCT` negatives) and micro-AP."""
    from fast_search import metrics as M

    n_negative = int((~(np.asarray(positives).reshape(len(I), -1) >= 0).any(axis=1)).sum())
    recall, threshold = M.recall_at_fpr(D, I, positives, 0.01)
    enough = n_negative >= MIN_NEGATIVES_1PCT
    return {
        "recall@1": M.recall_at_k(D, I, positives, 1),
        "recall@1%fpr": recall if enough else None,
        "threshold@1%fpr": threshold if enough else None,
        "micro_ap": M.micro_average_precision(D, I, positives),
    }


def measures_with_ci(D: np.ndarray, I: np.ndarray, positives: np.ndarray, n: int = N_BOOTSTRAP, seed: int = 0) -> dict:
    """`copy_measures` plus ``<measure> ci`` = [low, high] (bootstrap over queries) for each measure."""
    from fast_search import metrics as M

    positives = np.asarray(positives)
    out = copy_measures(D, I, positives)
    positive = (positives.reshape(len(I), -1) >= 0).any(axis=1)
    fns = {
        "recall@1": lambda r: M.recall_at_k(D[r], I[r], positives[r], 1),
        "micro_ap": lambda r: M.micro_average_precision(D[r], I[r], positives[r]),
    }
    if out["recall@1%fpr"] is not None:
        fns["recall@1%fpr"] = lambda r: M.recall_at_fpr(D[r], I[r], positives[r], 0.01)[0]
    for key, fn in fns.items():
        out[f"{key} ci"] = list(bootstrap_ci(fn, positive, n, seed=seed)) if n else [None, None]
    return out


def _kept_queries(data, train_families: Sequence[str], split: str | None) -> tuple[np.ndarray, np.ndarray]:
    """(rows kept, rows that are positive queries): held-out families, the chosen split of source groups.

    Positives of held-out families only; negatives whatever made them (their source images are never
    trained on, `check_disjoint`), so each kind keeps >= 1,000 negatives in the test split.
    """
    seen = set(train_families)
    attacks = [query_attack(q) for q in data.query_ids]
    positive = (data.positives >= 0).any(axis=1)
    keep = ~positive | np.array([a is None or attack_family(a) not in seen for a in attacks])
    groups = [
        source_group(q, bool(p), str(data.database_ids[t]) if t >= 0 else None)
        for q, p, t in zip(data.query_ids, positive, data.targets, strict=True)
    ]
    validation = split_groups(groups)
    if split == "validation":
        keep &= validation
    elif split == "test":
        keep &= ~validation
    elif split is not None:
        raise ValueError(f"split must be 'validation', 'test' or None, got {split!r}")
    return keep, positive


def evaluate_protocol(
    method: str,
    database: Sequence[str],
    queries: Sequence[str],
    train_families: Sequence[str],
    split: str | None = "test",
    background: str | None = None,
    normalise_on: Sequence[str] = ("photo",),
    features_root: str | os.PathLike | None = None,
    k: int = 10,
    n_bootstrap: int = N_BOOTSTRAP,
) -> dict:
    """Score stored features `method` under the protocol: held-out families, one split, intervals, kinds.

    Positive queries made by a family in `train_families` are left out (and `check_attacks` verifies
    the rest); negative queries are all kept (no source image of theirs is ever trained on). `split` keeps the
    validation or the test rows (`split_groups`; None: all). Reported: ``raw`` over every kept
    negative, ``by_kind`` (positives + the negatives of one kind), and with `background` (a
    dataset of stored features) ``normalized``: SSCD's score normalisation judged on the negatives
    of the kinds `normalise_on` only; a kind whose generator also made a background image is
    refused (ValueError), so the background never flatters the negatives it is judged on
    (`fast_search.improve.score_normalise`: cosine and Hamming alike).
    """
    from data_retrieval.datasets import generator_kind
    from fast_search.block import array_blocks, block_search
    from fast_search.data import load_search_data
    from helpers.paths import FEATURES_DIR

    root = FEATURES_DIR if features_root is None else features_root
    if split == "validation":
        n_bootstrap = 0  # validation only chooses; the intervals belong to the test table
    data = load_search_data(method, list(database), list(queries), root)
    metric = "hamming" if data.binary else "cosine"
    keep, positive = _kept_queries(data, train_families, split)
    checks = check_attacks([q for q, k in zip(data.query_ids, keep & positive, strict=True) if k], train_families)
    rows = np.flatnonzero(keep)
    if not len(rows):
        raise ValueError(f"no query of {list(queries)} is left to score (split {split!r}, held-out families)")
    xq, positives, ids = data.queries[rows], data.positives[rows], data.query_ids[rows]
    width = min(k + 1, len(data.database))  # one extra column: ties at the k-th are counted whole
    D, I, _ = block_search(xq, array_blocks(data.database), width, metric, total=len(data.database))
    pos = positive[rows]
    kinds = np.array([generator_kind(q) or "unknown" for q in ids], dtype=object)
    out: dict = {
        "method": method, "metric": metric, "split": split, "n_queries": int(len(rows)),
        "n_positive": int(pos.sum()), "n_negative": int((~pos).sum()), "n_database": int(len(data.database)),
        "checks": checks, "raw": measures_with_ci(D, I, positives, n_bootstrap), "by_kind": {},
    }  # fmt: skip
    for kind in sorted(set(kinds[~pos])):
        sel = pos | (kinds == kind)
        out["by_kind"][kind] = {"n_negative": int((sel & ~pos).sum()),
                                **measures_with_ci(D[sel], I[sel], positives[sel], n_bootstrap)}
    if background is not None:
        out["normalized"] = _normalised(method, root, background, normalise_on, xq, D, I, positives, ids, pos, kinds,
                                        metric, n_bootstrap)  # fmt: skip
    return out


def _normalised(method, root, background, normalise_on, xq, D, I, positives, ids, pos, kinds, metric, n_bootstrap):
    """SSCD's score normalisation of (D, I) against `background`, judged on the negatives of `normalise_on`."""
    from data_retrieval.datasets import shared_generators
    from extractor.store import load_features
    from fast_search.block import array_blocks, block_search
    from fast_search.improve import score_normalise

    bg = load_features(background, method, root)
    judged = pos | np.isin(kinds, list(normalise_on))
    shared = shared_generators(list(bg.ids), list(ids[judged & ~pos]))
    if shared:
        raise ValueError(
            f"background {background!r} shares generator(s) {', '.join(shared[:5])} with the negatives it would be "
            f"judged on ({', '.join(normalise_on)}): choose other negatives (normalise_on) or another background"
        )
    n_bg = min(3, len(bg.features))
    bg_D, _, _ = block_search(xq[judged], array_blocks(bg.features), n_bg, metric, total=len(bg.features))
    Dn = score_normalise(D[judged], bg_D, metric, 1.0, n_bg)
    return {"negatives": list(normalise_on), "n_negative": int((judged & ~pos).sum()),
            "n_background": int(len(bg.features)), **measures_with_ci(Dn, I[judged], positives[judged], n_bootstrap)}
