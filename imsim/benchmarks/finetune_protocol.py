"""Leak-free training results (issue 21): SSCD and SimCLR fine-tuning scored under finetuning/protocol.py.

    python -m imsim.benchmarks.finetune_protocol --recipe sscd     # prepare, train, choose on validation, test
    python -m imsim.benchmarks.finetune_protocol --recipe simclr
    python -m imsim.benchmarks.finetune_protocol --recipe sscd --skip-train   # score what exists

Not part of `make bench` (it trains). Every step is resumable (rerun the same command):
1. the demo set (database: its 23 originals and 1,000 of its distractors, 800 procedural and 200
   photograph tiles) and N_TRAIN procedural training pictures of their own seed stream
   (`Datasets/protocol_train/procedural<i>.jpg`): no file and no bytes shared with the evaluation
   images (checked when the run starts, `Results/<run>/split.json`);
2. training with the recipe's fixed settings (`RECIPES` below; nothing is tuned on test data);
3. every candidate epoch and the baselines are scored on the **validation** split (a third of the
   originals and of the negative sources); the epoch (and the best hash) with the highest
   validation micro-AP is chosen;
4. the chosen models are scored once on the **test** split: held-out attack families only
   (training applies none of them; verified per query), 95 % bootstrap intervals over queries,
   recall at 1 % FPR only over >= 1,000 negatives, every measure by kind of negative (photo,
   procedural), and SSCD's score normalisation (background: 300 training pictures, judged on the
   photo negatives only since the background shares the procedural generator).
Written to `Results/<run>/protocol.{md,json}`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from data_retrieval.attacks import ATTACK_IDS, attack_family
from helpers.atomic import write_text
from helpers.jsonio import load_json, save_json
from helpers.paths import CHECKPOINTS_DIR, DATASETS_DIR, FEATURES_DIR, RESULTS_DIR
from imsim.benchmarks import record

HASHES = ["ahash", "phash", "dhash", "whash"]
N_TRAIN = 2000
N_BACKGROUND = 300
TRAIN_SEED = 17  # the demo uses seed 0
DATABASE = ["demo_original", "demo_distractors"]
#: The database's distractors: the first 800 procedural ones and 200 photograph tiles of the demo's 5,000
#: (a scale at which every model's features are extracted in minutes on the shared machine).
N_PROCEDURAL_DISTRACTORS, N_TILE_DISTRACTORS = 800, 200
QUERIES = ["demo_attacks", "demo_negatives"]
#: The SSCD policy's held-out families (finetuning/copy_policy.py): SimCLR's copy policy draws every
#: other catalogue attack, so both recipes are scored on the same families.
HELDOUT = ("gaussian_noise", "s&p_noise", "speckle_noise", "median_filter", "sharpness_enhancement")
SIMCLR_ATTACKS = [a for a in ATTACK_IDS if attack_family(a) not in HELDOUT]

#: The runs: fixed settings (a small CPU scale that finishes on the shared 2-core machine).
RECIPES = {
    "sscd": dict(
        run="protocol_sscd", baseline=None, epochs_scored=(0, 4),
        train=dict(recipe="sscd", encoder="efficientnet_lite0", weights="DEFAULT", size=128, eval_size=160,
                   batch_size=32, epochs=4, steps_per_epoch=15, optimizer="adamw", lr=2e-4, warmup_epochs=0.25,
                   dim=256, freeze=0.8, preload=160, workers=1, mixup=0.05, temperature=0.05, entropy_weight=30.0,
                   eval_every=0, eval_background=0),
    ),
    "simclr": dict(
        run="protocol_simclr", baseline=None, epochs_scored=(0, 3, 6),
        train=dict(recipe="simclr", encoder="resnet18", weights=None, policy="copy", attacks=SIMCLR_ATTACKS,
                   size=64, batch_size=32, epochs=6, steps_per_epoch=15, optimizer="adam", lr=1e-3,
                   warmup_epochs=0.5, preload=128, workers=0, eval_background=0),
    ),
}  # fmt: skip


def prepare(datasets_root: Path) -> Path:
    """The demo set (completed if needed) and the training pictures; returns the training folder."""
    from data_retrieval.demo import build_demo, write_procedural

    build_demo(datasets_root)
    folder = Path(datasets_root) / "protocol_train"
    write_procedural(folder, N_TRAIN, seed=TRAIN_SEED, stream="protocol-train")
    return folder


def run_config(recipe: str, folder: Path, roots: dict):
    from finetuning.training import TrainConfig

    spec = RECIPES[recipe]
    return TrainConfig(name=spec["run"], dataset=[str(folder)], **spec["train"], **roots)


def held_out_listing(datasets_root: Path, families: set[str]):
    """demo_attacks restricted to the queries of held-out families (the others are never scored)."""
    from data_retrieval.datasets import load_dataset
    from finetuning.protocol import query_attack

    full = load_dataset("demo_attacks", root=datasets_root)
    keep = [i for i, q in enumerate(full.ids) if attack_family(query_attack(q) or "") not in families]
    full.paths = [full.paths[i] for i in keep]
    full.ids = [full.ids[i] for i in keep]
    return full


def distractor_listing(datasets_root: Path):
    """demo_distractors restricted to `N_PROCEDURAL_DISTRACTORS` procedural pictures and `N_TILE_DISTRACTORS` tiles."""
    import re

    from data_retrieval.datasets import load_dataset

    full = load_dataset("demo_distractors", root=datasets_root)

    def wanted(image_id: str) -> bool:
        stem = image_id.rpartition("/")[2]
        tile = re.fullmatch(r"[A-Za-z0-9]+-tile([0-9]+)", stem)
        return int(tile[1]) < N_TILE_DISTRACTORS if tile else stem.isdigit() and int(stem) < N_PROCEDURAL_DISTRACTORS

    keep = [i for i, q in enumerate(full.ids) if wanted(q)]
    full.paths = [full.paths[i] for i in keep]
    full.ids = [full.ids[i] for i in keep]
    return full


def extract(ext, roots: dict, families: set[str], train_folder: Path, background: bool) -> str | None:
    """Store `ext`'s features of the database, the held-out queries, the negatives and the background."""
    from data_retrieval.datasets import load_dataset
    from extractor.pipeline import extract_dataset

    kw = dict(features_root=roots["features_root"], datasets_root=roots["datasets_root"], workers=0, batch_size=64)
    for dataset in ["demo_original", "demo_negatives"]:
        extract_dataset(ext, dataset, **kw)
    extract_dataset(ext, distractor_listing(Path(roots["datasets_root"])), **kw)
    extract_dataset(ext, held_out_listing(Path(roots["datasets_root"]), families), **kw)
    if not background:
        return None
    listing = load_dataset(str(train_folder), recursive=True)
    extract_dataset(ext, listing, limit=N_BACKGROUND, **kw)
    return listing.name


def checkpoint_extractor(recipe: str, path: Path, epoch: int, run: str):
    if recipe == "sscd":
        from extractor.sscd import create_sscd

        return create_sscd(path)
    from finetuning.evaluation import register_checkpoint

    return register_checkpoint(path, f"{run}-epoch{epoch:03d}")


def score(method: str, families: list[str], split: str, roots: dict, background: str | None) -> dict:
    from finetuning.protocol import evaluate_protocol

    return evaluate_protocol(method, DATABASE, QUERIES, families, split=split, background=background,
                             features_root=roots["features_root"])  # fmt: skip


def _cell(m: dict | None, key: str) -> str:
    if not m or m.get(key) is None:
        return "n/a"
    lo, hi = m.get(f"{key} ci") or (None, None)
    return f"{m[key]:.3f}" + (f" [{lo:.3f}, {hi:.3f}]" if lo is not None else "")


def table(rows: list[dict]) -> str:
    """Markdown: one line per model; raw over all negatives, raw per kind, normalised (photo negatives)."""
    head = ("| model (chosen on validation) | recall@1 | recall @ 1 % FPR | micro-AP | recall @ 1 % FPR, photo "
            "negatives | recall @ 1 % FPR, procedural negatives | score-normalised, photo negatives: recall @ 1 % FPR"
            " / micro-AP |\n|---|---|---|---|---|---|---|\n")  # fmt: skip
    lines = []
    for r in rows:
        res, kinds, norm = r["test"], r["test"]["by_kind"], r["test"].get("normalized")
        norm_cell = "n/a" if not norm else f"{_cell(norm, 'recall@1%fpr')} / {_cell(norm, 'micro_ap')}"
        lines.append(f"| {r['label']} | {_cell(res['raw'], 'recall@1')} | {_cell(res['raw'], 'recall@1%fpr')} | "
                     f"{_cell(res['raw'], 'micro_ap')} | {_cell(kinds.get('photo'), 'recall@1%fpr')} | "
                     f"{_cell(kinds.get('procedural'), 'recall@1%fpr')} | {norm_cell} |")  # fmt: skip
    t = rows[0]["test"]
    kinds = ", ".join(f"{v['n_negative']} {k}" for k, v in t["by_kind"].items())
    return head + "\n".join(lines) + (
        f"\n\nTest split: {t['n_positive']} positive queries (held-out families), {t['n_negative']} negative queries "
        f"({kinds}), {t['n_database']} database images; [95 % bootstrap interval over queries]."
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipe", choices=list(RECIPES), default="sscd")
    p.add_argument("--skip-train", action="store_true", help="score the checkpoints that exist, do not train")
    p.add_argument("--datasets-root", type=Path, default=DATASETS_DIR)
    p.add_argument("--features-root", type=Path, default=FEATURES_DIR)
    p.add_argument("--checkpoints-root", type=Path, default=CHECKPOINTS_DIR)
    p.add_argument("--results-root", type=Path, default=RESULTS_DIR)
    args = p.parse_args(argv)
    from extractor.registry import create_extractor
    from finetuning.checkpoint import list_checkpoints
    from finetuning.training import train

    spec = RECIPES[args.recipe]
    roots = {k: str(getattr(args, k)) for k in ("datasets_root", "features_root", "checkpoints_root", "results_root")}
    folder = prepare(args.datasets_root)
    cfg = run_config(args.recipe, folder, roots)
    ckpt_dir = Path(cfg.checkpoints_root) / cfg.name
    found = list_checkpoints(ckpt_dir)
    start = time.perf_counter()
    if not args.skip_train and (not found or max(found) < cfg.epochs):
        train(cfg, resume="latest" if found else None)
        found = list_checkpoints(ckpt_dir)
    train_s = time.perf_counter() - start
    if not found:
        print(f"no checkpoints of run {cfg.name!r} in {ckpt_dir}; run without --skip-train", file=sys.stderr)
        return 2
    results = Path(cfg.results_root) / cfg.name
    split = load_json(results / "split.json")
    families = sorted(split["train"]["families"])
    fam = set(families)
    candidates: list[tuple[str, str, object]] = [(h, "hash", create_extractor(h)) for h in HASHES]
    if spec["baseline"]:
        candidates.append((f"{spec['baseline']} (ImageNet)", "baseline", create_extractor(spec["baseline"])))
    for epoch in [e for e in spec["epochs_scored"] if e in found]:
        candidates.append((f"{cfg.name} epoch {epoch}", f"epoch {epoch}", checkpoint_extractor(args.recipe, found[epoch], epoch, cfg.name)))
    validation = {}
    background = {}
    for label, kind, ext in candidates:
        background[label] = extract(ext, roots, fam, folder, background=True)
        validation[label] = (kind, ext.name, score(ext.name, families, "validation", roots, None))
    val_ap = {label: v[2]["raw"]["micro_ap"] for label, v in validation.items()}
    best_hash = max((lb for lb, v in validation.items() if v[0] == "hash"), key=lambda lb: val_ap[lb])
    epochs = [lb for lb, v in validation.items() if v[0].startswith("epoch")]
    best_epoch = max(epochs, key=lambda lb: val_ap[lb])
    chosen = [best_hash, *[lb for lb, v in validation.items() if v[0] == "baseline"]]
    chosen += [lb for lb in epochs if lb.endswith("epoch 0")] + ([best_epoch] if not best_epoch.endswith("epoch 0") else [])
    last = max(epochs, key=lambda lb: int(lb.rpartition(" ")[2]))
    rows = []
    for label in [*chosen, *([last] if last not in chosen else [])]:
        kind, method, _ = validation[label]
        test = score(method, families, "test", roots, background[label])
        shown = label if label in chosen else f"{label} (not chosen; for reference)"
        rows.append({"label": shown, "method": method, "validation_micro_ap": val_ap[label], "test": test})
    meta = {"recipe": args.recipe, "run": cfg.name, "commit": record.commit(), "machine": record.machine(),
            "train_images": N_TRAIN, "epochs": cfg.epochs, "steps_per_epoch": cfg.steps_per_epoch,
            "batch_size": cfg.batch_size, "train_families": families, "validation_micro_ap": val_ap,
            "chosen_epoch": best_epoch, "chosen_hash": best_hash, "train_seconds_this_call": round(train_s)}  # fmt: skip
    report = (f"{table(rows)}\n\nValidation micro-AP (chooses the epoch and the hash): "
              + ", ".join(f"{k} {v:.3f}" for k, v in val_ap.items()) + f"\n\n{json.dumps(meta)}\n")
    print(report)
    write_text(results / "protocol.md", report)
    save_json({"meta": meta, "rows": rows}, results / "protocol.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
