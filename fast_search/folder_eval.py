"""One folder evaluated against itself, as imagededup users know it: duplicate pairs vs a ground-truth file.

```python
from fast_search.folder_eval import evaluate_folder
report = evaluate_folder("my_photos", "phash", "pairs.csv")   # pairs.csv: image,duplicate rows
report["pairs"]       # {"precision", "recall", "f1", "tp", "n_predicted", "n_true"} of the duplicate pairs
report["retrieval"]   # recall@k, mAP@k, micro-AP... of every image searched among the others
```

The ground truth is our CSV (`fast_search.groundtruth`): one ``image,duplicate`` pair a row (either
direction; a pair is unordered), ids as the library names them (``my_photos/a``) or file names
(``a.jpg``, ``sub/a.jpg``). Predicted pairs are those of `find_duplicates` (within the method's
threshold): pair precision, recall and F1 as imagededup's ``evaluate`` gives them for the duplicate
class. The retrieval measures come from a search experiment of the folder against itself, where
each image's positives are its duplicates and an image never matches itself (self-matches are
excluded, `fast_search.experiment`); images without a duplicate are the negative queries.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from fast_search.groundtruth import read_ground_truth
from helpers.atomic import write_text
from helpers.jsonio import save_json
from helpers.paths import DATASETS_DIR, FEATURES_DIR, RESULTS_DIR


def pair_scores(predicted: set[frozenset], truth: set[frozenset]) -> dict:
    """Precision, recall and F1 of predicted unordered pairs against the true ones (nan when undefined)."""
    tp = len(predicted & truth)
    precision = tp / len(predicted) if predicted else math.nan
    recall = tp / len(truth) if truth else math.nan
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else math.nan
    return {"precision": precision, "recall": recall, "f1": f1, "tp": tp,
            "n_predicted": len(predicted), "n_true": len(truth)}  # fmt: skip


def _resolver(ids: list[str], paths: list[str], folder: Path | None) -> dict[str, str]:
    """Every name a ground-truth file may use for an image (id, id without dataset, file name, relative path)."""
    out: dict[str, str] = {}
    for image_id, path in zip(ids, paths, strict=True):
        p = Path(path)
        names = [image_id, image_id.partition("/")[2], p.name]
        if folder is not None:
            try:
                names.append(p.resolve().relative_to(folder.resolve()).as_posix())
            except ValueError:
                pass
        for name in names:
            out.setdefault(name, image_id)
    return out


def read_pairs(path: str | os.PathLike, resolve: dict[str, str]) -> tuple[set[frozenset], list[str]]:
    """Unordered pairs of image ids from a ground-truth CSV, and the names it uses that are no image."""
    positives, _ = read_ground_truth(path)
    pairs, unknown = set(), []
    for query, found in positives.items():
        for other in found:
            a, b = resolve.get(query), resolve.get(other)
            if a is None or b is None:
                unknown.append(query if a is None else other)
            elif a != b:
                pairs.add(frozenset((a, b)))
    return pairs, unknown


def evaluate_folder(
    source: str | os.PathLike,
    method: str,
    ground_truth: str | os.PathLike,
    max_distance: float | None = None,
    *,
    ks: tuple[int, ...] = (1, 10),
    name: str | None = None,
    features_root: str | os.PathLike = FEATURES_DIR,
    datasets_root: str | os.PathLike = DATASETS_DIR,
    results_root: str | os.PathLike = RESULTS_DIR,
    recursive: bool = False,
    workers: int = 2,
    progress: bool = True,
) -> dict:
    """Pair precision/recall/F1 and retrieval measures of one folder against a ground-truth pairs file.

    Writes ``results_root/<name>/`` (default ``folder-eval-<folder>-<method>``): the search
    experiment's results.json and ``folder_eval.json`` with this report. Raises ValueError when the
    ground truth names no image of the folder.
    """
    from data_retrieval.datasets import load_dataset
    from fast_search.duplicates import find_duplicates
    from fast_search.experiment import run_experiment
    from fast_search.metric_table import summary_cells

    dups = find_duplicates(source, method, max_distance, features_root=features_root, datasets_root=datasets_root,
                           recursive=recursive, workers=workers, progress=progress)  # fmt: skip
    from fast_search.duplicates import folder_key

    key = folder_key(source)  # the store find_duplicates wrote: keyed by the folder's full path
    listing = load_dataset(source, root=datasets_root, recursive=recursive, name=None if key == str(source) else key)
    folder = Path(source) if Path(source).is_dir() else None
    truth, unknown = read_pairs(ground_truth, _resolver(dups.ids, dups.paths, folder))
    if not truth:
        raise ValueError(f"{ground_truth}: no pair names two images of {source} (e.g. {unknown[:1]})")
    predicted = {frozenset((dups.ids[i], dups.ids[j])) for i, j, _ in dups.pairs}
    name = name or f"folder-eval-{folder.name if folder else listing.name}-{dups.method}".replace("/", "_")
    out_dir = Path(results_root) / name
    out_dir.mkdir(parents=True, exist_ok=True)
    gt_csv = out_dir / "ground_truth_pairs.csv"  # both directions: each image's duplicates are its positives
    write_text(gt_csv, "query_id,positive_id\n" + "".join(f"{a},{b}\n{b},{a}\n" for a, b in sorted(map(sorted, truth))))
    res = run_experiment(
        name, dups.method, [listing.name], [listing.name], overwrite=True, ground_truth=str(gt_csv),
        indexes=["BFlat" if dups.binary else "Flat"], metrics=["hamming" if dups.binary else "cosine"],
        ks=sorted(ks), features_root=features_root, results_root=results_root,
    )  # fmt: skip
    report = {
        "source": str(source),
        "method": dups.method,
        "max_distance": dups.max_distance,
        "n_images": len(dups.ids),
        "pairs": pair_scores(predicted, truth),
        "unknown_names": len(unknown),
        "retrieval": summary_cells(res["runs"][0], sorted(ks)),
        "self_matches_excluded": res["data"]["self_matches_excluded"],
    }
    report["pairs"] = {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in report["pairs"].items()}
    save_json(report, out_dir / "folder_eval.json")
    return report
