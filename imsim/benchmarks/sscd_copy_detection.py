"""Does SSCD fine-tuning help? Perceptual hashes vs EfficientNet-Lite0 ImageNet features vs the same after SSCD.

    python -m imsim.benchmarks.sscd_copy_detection                  # prepare data, train (~30 min on 2 cores), score
    python -m imsim.benchmarks.sscd_copy_detection --epochs 0 2 4 8  # score more epochs (figure: copy_eval.png)
    python -m imsim.benchmarks.sscd_copy_detection --skip-train     # score an existing run (--run NAME)

Not part of `make bench` (it trains). Steps, each skipped when its output exists:
1. the demo set (`python -m data_retrieval.demo`) and 2,000 training pictures made by the demo's
   procedural generator with another seed (`Datasets/sscd_train`): disjoint from every evaluation image;
2. `finetune.py --recipe sscd` with the settings of `TRAIN` below (the split goes to Results/<run>/split.json);
3. features of the evaluation sets (database: demo originals + 5,000 distractors; queries: demo
   attacks + negatives) and of 1,000 training pictures (the score-normalisation background) for
   the four hashes, `efficientnet_lite0`, and the run's checkpoints;
4. the table: recall@1, recall at 1 % FPR, micro-AP on the attack families the training policy
   never applies (and on all 58 attacks), each raw and score-normalised. Written to
   Results/<run>/benchmark.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from data_retrieval.datasets import dataset_folder
from finetuning.checkpoint import list_checkpoints
from finetuning.copy_eval import evaluate_epoch, evaluate_method, extract_for_eval, flat_row
from finetuning.training import TrainConfig, train
from helpers import atomic
from helpers.jsonio import load_json, save_json
from helpers.paths import CHECKPOINTS_DIR, DATASETS_DIR, FEATURES_DIR, RESULTS_DIR
from imsim.benchmarks import record

RUN = "sscd_lite0_f08"
HASHES = ["ahash", "phash", "dhash", "whash"]
BASELINE = "efficientnet_lite0"
N_TRAIN_IMAGES = 2000
TRAIN_SEED = 17  # the demo's distractors use seed 0: other pictures
#: The measured run (docs/benchmarks.md's table): a short CPU fine-tune at a small resolution.
TRAIN = dict(
    recipe="sscd", encoder="efficientnet_lite0", weights="DEFAULT", size=128, eval_size=160, batch_size=32,
    epochs=8, optimizer="adamw", lr=2e-4, warmup_epochs=0.25, dim=256, freeze=0.8, preload=160, workers=1,
    mixup=0.05, temperature=0.05, entropy_weight=30.0, eval_every=0,
)  # fmt: skip


def prepare(datasets_root: Path) -> Path:
    """The demo set and the training pictures (kept when they exist); returns the training folder."""
    from data_retrieval.demo import build_demo, write_distractors

    if not dataset_folder("demo_distractors", datasets_root).is_dir():
        build_demo(datasets_root)
    folder = Path(datasets_root) / "sscd_train"
    write_distractors(folder, N_TRAIN_IMAGES, seed=TRAIN_SEED)
    return folder


def run_config(run: str, train_folder: Path, roots: dict) -> TrainConfig:
    return TrainConfig(name=run, dataset=[str(train_folder)], **TRAIN, **roots)


def score_baselines(cfg: TrainConfig, attack_ids) -> list[dict]:
    """Rows of the hashes and the ImageNet baseline (features extracted once, then reused)."""
    from extractor.registry import create_extractor

    rows = []
    for method in [*HASHES, BASELINE]:
        ext = create_extractor(method)
        background = extract_for_eval(ext, cfg, workers=0)
        for attacks, label in ((attack_ids, "heldout"), (None, "all")):
            res = evaluate_method(ext.name, cfg.eval_database, cfg.eval_queries, attacks, background, cfg.features_root)
            rows.append({"model": method, "attacks": label, **flat_row(res)})
    return rows


def score_run(cfg: TrainConfig, epochs: list[int], attack_ids) -> list[dict]:
    """Rows of the run's chosen epochs (held-out and all attacks); the held-out ones also feed copy_eval.png."""
    from extractor.sscd import create_sscd

    found = list_checkpoints(Path(cfg.checkpoints_root) / cfg.name)
    rows = []
    for epoch in epochs:
        evaluate_epoch(cfg, epoch, found[epoch])  # extracts, scores held-out, redraws the figure
        ext = create_sscd(found[epoch])
        background = extract_for_eval(ext, cfg, workers=0)
        for attacks, label in ((attack_ids, "heldout"), (None, "all")):
            res = evaluate_method(ext.name, cfg.eval_database, cfg.eval_queries, attacks, background, cfg.features_root)
            rows.append({"model": f"SSCD epoch {epoch}", "attacks": label, **flat_row(res)})
    return rows


def table(rows: list[dict], attacks: str) -> str:
    """Markdown table: best hash, the baseline, the run's epochs; raw / score-normalised columns."""
    chosen = [r for r in rows if r["attacks"] == attacks]
    hashes = [r for r in chosen if r["model"] in HASHES]
    best = max(hashes, key=lambda r: (r["recall@1%FPR"], r["micro-AP"])) if hashes else None
    keep = ([best] if best else []) + [r for r in chosen if r["model"] not in HASHES]
    head = "| descriptor | recall@1 | recall @ 1 % FPR | micro-AP |\n|---|---|---|---|\n"
    lines = []
    for r in keep:
        name = f"(a) best hash: {r['model']}" if r is best else r["model"]
        cells = [f"{r[k]:.3f} / {r.get(k + ' (norm)', float('nan')):.3f}" for k in ("recall@1", "recall@1%FPR", "micro-AP")]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    n = chosen[0] if chosen else {}
    note = (f"\n{n.get('n_positive')} positive and {n.get('n_negative')} negative queries, {n.get('n_database')} "
            f"database images; each cell: raw / score-normalised.\n")  # fmt: skip
    return head + "\n".join(lines) + note


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", default=RUN, help="run name (Checkpoints/<run>, Results/<run>)")
    p.add_argument("--skip-train", action="store_true", help="score an existing run, do not train")
    p.add_argument("--epochs", type=int, nargs="+", default=None, help="epochs to score (default: 0 and the last)")
    p.add_argument("--datasets-root", type=Path, default=DATASETS_DIR)
    p.add_argument("--features-root", type=Path, default=FEATURES_DIR)
    p.add_argument("--checkpoints-root", type=Path, default=CHECKPOINTS_DIR)
    p.add_argument("--results-root", type=Path, default=RESULTS_DIR)
    args = p.parse_args(argv)
    roots = {k: str(getattr(args, k)) for k in ("datasets_root", "features_root", "checkpoints_root", "results_root")}
    folder = prepare(args.datasets_root)
    cfg = run_config(args.run, folder, roots)
    found = list_checkpoints(Path(cfg.checkpoints_root) / cfg.name)
    if not args.skip_train and (not found or max(found) < cfg.epochs):
        train(cfg, resume="latest" if found else None)
        found = list_checkpoints(Path(cfg.checkpoints_root) / cfg.name)
    if not found:
        print(f"no checkpoints of run {cfg.name!r} in {cfg.checkpoints_root}; run without --skip-train", file=sys.stderr)
        return 2
    results = Path(cfg.results_root) / cfg.name
    split = load_json(results / "split.json")
    attack_ids = split["eval"]["heldout_attack_ids"]
    epochs = args.epochs or sorted({0, max(found)})
    rows = score_baselines(cfg, attack_ids) + score_run(cfg, epochs, attack_ids)
    report = (
        f"{record.header(cfg.name)}\n\n"
        f"Held-out attack families ({', '.join(split['eval']['heldout_families'])}):\n\n{table(rows, 'heldout')}\n"
        f"All 58 attacks:\n\n{table(rows, 'all')}"
    )
    print(report)
    atomic.write_text(results / "benchmark.md", report)
    save_json({"commit": record.commit(), "machine": record.machine(), "versions": record.versions(), "rows": rows},
              results / "benchmark.json")
    print(f"-> {results / 'benchmark.md'}, {results / 'benchmark.json'}, {results / 'copy_eval.png'}; "
          f"rows: {json.dumps(len(rows))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
