"""Duplicates as a person judges them: pair precision, recall and "original kept", next to imagededup on the same folders.

Two folders where the truth is known: the demo's originals with their 58 attacks each
(``Original`` + ``Attacks``; an attack's group is the stem before its first ``_``), and the
photographs of `data_retrieval.photo_duplicates` (originals, their quarter tiles, 16 edit types;
``truth.csv``). For each method at its default threshold: pair precision and recall (every pair of
the folder), and among the groups found that contain an original, the share whose kept file is it.
imagededup runs from its own virtual environment (BENCH_PEERS_PYTHON, e.g. /tmp/peers/bin/python
after ``python3 -m venv /tmp/peers && /tmp/peers/bin/pip install imagededup``) on the same files,
at its default threshold (10 bits) and at ours. Also prints the flip/rotation option's recall gain
and cost. BENCH_DUPQ_DEMO: the demo root (default: built into a temporary folder).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PEER_SCRIPT = r"""
import json, sys, time
from imagededup.methods import AHash, DHash, PHash, WHash
folder, threshold = sys.argv[1], sys.argv[2]
out = {}
for cls in (PHash, DHash, AHash, WHash):
    start = time.perf_counter()
    h = cls(verbose=False)
    enc = h.encode_images(image_dir=folder)
    t = 10 if threshold == "default" else json.loads(threshold)[cls.__name__.lower()]
    matches = h.find_duplicates(encoding_map=enc, max_distance_threshold=t)
    remove = h.find_duplicates_to_remove(encoding_map=enc, max_distance_threshold=t)
    out[cls.__name__.lower()] = {"threshold": t, "matches": {k: [m for m in v] for k, v in matches.items()},
                                 "remove": list(remove), "seconds": time.perf_counter() - start}
print(json.dumps(out))
"""


def score(files: list[str], group_of: dict[str, str], originals: set[str], pairs: set[tuple[str, str]],
          kept_in: dict[frozenset, str]) -> dict[str, float]:
    """Pair precision and recall, and the share of found groups holding an original whose kept file is it."""
    from collections import Counter

    sizes = Counter(group_of[f] for f in files)
    positives = sum(c * (c - 1) // 2 for c in sizes.values())
    tp = sum(group_of[a] == group_of[b] for a, b in pairs)
    with_original = {g: k for g, k in kept_in.items() if g & originals}
    kept_right = sum(k in originals and k in g for g, k in with_original.items())
    return {"precision": tp / len(pairs) if pairs else 1.0, "recall": tp / max(positives, 1), "pairs": len(pairs),
            "groups": len(kept_in), "original_kept": kept_right / max(len(with_original), 1),
            "groups_with_original": len(with_original)}


def components(files: list[str], pairs: set[tuple[str, str]]) -> list[frozenset]:
    parent = {f: f for f in files}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in pairs:
        parent[find(a)] = find(b)
    groups: dict[str, set[str]] = {}
    for f in files:
        groups.setdefault(find(f), set()).add(f)
    return [frozenset(g) for g in groups.values() if len(g) > 1]


def ours(folder: Path, method: str, features: Path, **kw) -> tuple[set, dict, float, float]:
    from fast_search.duplicates import find_duplicates

    start = time.perf_counter()
    dups = find_duplicates(folder, method, features_root=features, workers=2, progress=False, **kw)
    dups.remove_list()  # the keep policy's measurements count in the time
    elapsed = time.perf_counter() - start
    name = [Path(p).name for p in dups.paths]
    pairs = {tuple(sorted((name[i], name[j]))) for i, j, _ in dups.pairs}
    kept = {frozenset(name[i] for i in g): name[dups.kept(k)] for k, g in enumerate(dups.groups)}
    return pairs, kept, elapsed, dups.max_distance


def peers(folder: Path, thresholds: str) -> dict:
    python = os.environ.get("BENCH_PEERS_PYTHON", "/tmp/peers/bin/python")
    if not Path(python).exists():
        return {}
    run = subprocess.run([python, "-c", PEER_SCRIPT, str(folder), thresholds], capture_output=True, text=True,
                         cwd=tempfile.gettempdir())
    if run.returncode:
        print(f"imagededup failed: {run.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
        return {}
    return json.loads(run.stdout.strip().splitlines()[-1])


def demo_folder(tmp: Path) -> tuple[Path, dict[str, str], set[str]]:
    """Original + Attacks of the demo in one folder (links), with each file's group and the originals."""
    root = Path(os.environ.get("BENCH_DUPQ_DEMO", "")) if os.environ.get("BENCH_DUPQ_DEMO") else None
    if root is None:
        from data_retrieval.demo import build_demo

        root = tmp / "Datasets"
        build_demo(root, 0, 0, None)
    mix = tmp / "demo_mix"
    mix.mkdir()
    for sub in ("Original", "Attacks"):
        for f in sorted((root / "demo" / sub).iterdir()):
            (mix / f.name).symlink_to(f.resolve())
    group_of = {f.name: f.name.split("_")[0].rsplit(".", 1)[0] for f in mix.iterdir()}
    originals = {f.name for f in (root / "demo" / "Original").iterdir()}
    return mix, group_of, originals


def photo_folder(tmp: Path) -> tuple[Path, dict[str, str], set[str]]:
    from data_retrieval.photo_duplicates import build, read_truth

    folder = tmp / "photos"
    build(folder)
    rows = read_truth(folder)
    return folder, {r["file"]: r["group"] for r in rows}, {r["file"] for r in rows if r["role"] == "original"}


def table(title: str, folder: Path, group_of: dict[str, str], originals: set[str], features: Path) -> list[dict]:
    files = sorted(group_of)
    rows = []
    print(f"\n{title}: {len(files)} images, {len(originals)} originals")
    print("| tool, method | threshold | pair precision | pair recall | original kept | seconds |")
    print("|---|---|---|---|---|---|")
    ours_thresholds = {}
    for method in ("phash", "dhash", "ahash", "whash", "efficientnet_lite0"):
        pairs, kept, elapsed, t = ours(folder, method, features)
        ours_thresholds[method] = t
        s = score(files, group_of, originals, pairs, kept)
        rows.append({"tool": "imsim", "method": method, "threshold": t, "seconds": elapsed, **s})
        print(f"| imsim {method} | {t:g} | {s['precision']:.3f} | {s['recall']:.3f} | {s['original_kept']:.3f} "
              f"({s['groups_with_original']} groups) | {elapsed:.1f} |")
    for label, thresholds in (("default 10", "default"),
                              ("ours", json.dumps({k: int(v) for k, v in ours_thresholds.items() if k != "efficientnet_lite0"}))):
        for method, r in peers(folder, thresholds).items():
            pairs = {tuple(sorted((a, b))) for a, ms in r["matches"].items() for b in ms}
            removed = set(r["remove"])
            kept = {}
            for g in components(files, pairs):
                left = sorted(g - removed)
                kept[g] = left[0] if len(left) == 1 else ""
            s = score(files, group_of, originals, pairs, kept)
            rows.append({"tool": "imagededup", "method": method, "thresholds": label, "threshold": r["threshold"],
                         "seconds": r["seconds"], **s})
            print(f"| imagededup {method} ({label}) | {r['threshold']} | {s['precision']:.3f} | {s['recall']:.3f} | "
                  f"{s['original_kept']:.3f} | {r['seconds']:.1f} |")
    return rows


def invariance(folder: Path, group_of: dict[str, str], originals: set[str], features: Path) -> list[dict]:
    files = sorted(group_of)
    rows = []
    print("\nflip/rotation option (phash) on the photographs:")
    for invariant in (False, True):
        ours(folder, "phash", features, invariant=invariant)  # warm: the store exists
        pairs, kept, elapsed, t = ours(folder, "phash", features, invariant=invariant)
        s = score(files, group_of, originals, pairs, kept)
        rows.append({"invariant": invariant, "seconds": elapsed, **s})
        print(f"  invariant={invariant}: precision {s['precision']:.3f}, recall {s['recall']:.3f}, "
              f"{elapsed:.1f} s (features already in the store)")
    return rows


def main() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        features = tmp / "Features"
        photos = photo_folder(tmp)
        return {"photos": table("photographs (data_retrieval.photo_duplicates, seed 0)", *photos, features),
                "invariance": invariance(*photos, features),
                "demo": table("demo: Original + Attacks", *demo_folder(tmp), features)}


if __name__ == "__main__":
    main()
