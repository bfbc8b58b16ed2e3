"""What a clustering experiment takes: where the features are, the algorithm's settings, what to write.

    from clustering import ClusteringSource, AgglomerativeConfig, DBSCANConfig, RunOutput, cluster_experiment
    source = ClusteringSource("dhash", ["demo_original", "demo_attacks"])
    rows = cluster_experiment(source, AgglomerativeConfig(linkage="average", metric="hamming"))
    rows = dbscan_experiment(source, DBSCANConfig(metric="hamming", eps=[0.16]), RunOutput(save=False))

The scripts build the same objects from their flags (`from_args`), so a flag and a field share one
name. Light on imports: the scripts read it before ``--help`` returns.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from helpers import cli
from helpers.paths import DATASETS_DIR, FEATURES_DIR, RESULTS_DIR

T = TypeVar("T")


@dataclass(frozen=True)
class ClusteringSource:
    """The features of `method` on `datasets`; `partition` ("full"/"clean") and `negatives`
    ("singleton": distractors and negative queries form their own groups, "exclude": left out)."""

    method: str
    datasets: Sequence[str]
    partition: str = "full"
    negatives: str = "singleton"
    features_root: str | os.PathLike = FEATURES_DIR
    datasets_root: str | os.PathLike = DATASETS_DIR


@dataclass(frozen=True)
class RunOutput:
    """What a run measures (`score` needs ground truth, `geometry`) and writes (`save`, image grids)."""

    score: bool = True
    geometry: bool = True
    save: bool = True
    max_grids: int = 10
    run_name: str | None = None
    results_root: str | os.PathLike = RESULTS_DIR
    verbose: bool = True


@dataclass(frozen=True)
class AgglomerativeConfig:
    """One tree, cut at each of `n_clusters` and `distance_threshold` (neither: the number of groups)."""

    linkage: str = "ward"
    metric: str = "euclidean"
    n_clusters: int | Sequence[int] | None = None
    distance_threshold: float | Sequence[float] | None = None
    memory_budget_gb: float = 4.0
    n_neighbors: int = 15
    path: str = "auto"


@dataclass(frozen=True)
class DBSCANConfig:
    """DBSCAN over an `eps` sweep (None: the seed's sweep for the metric) on one graph, or HDBSCAN."""

    eps: float | Sequence[float] | None = None
    min_samples: int = 5
    metric: str = "euclidean"
    hdbscan: bool = False
    min_cluster_size: int = 5
    graph: str = "range"
    n_neighbors: int = 50
    noise: str = "singleton"
    memory_budget_gb: float = 4.0


def from_args(cls: type[T], args: argparse.Namespace, **renamed: Any) -> T:
    """An instance of dataclass `cls` from the flags of the same names (`renamed`: field=value overrides)."""
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)}
    return cls(**{**values, **renamed})


def add_common_args(p: argparse.ArgumentParser, *, method: str, datasets: Sequence[str], partition: str,
                    negatives: str, max_grids: int, save: bool) -> None:
    """The flags of `ClusteringSource` and `RunOutput`, shared by hierarchical.py and dbscan.py."""
    p.add_argument("--method", default=method, help="feature method (store name), default %(default)s")
    p.add_argument("--datasets", nargs="+", default=datasets, help="datasets whose features are clustered together")
    p.add_argument("--partition", choices=["full", "clean"], default=partition, help="clean drops the noisy meme templates")
    p.add_argument("--negatives", choices=["singleton", "exclude"], default=negatives,
                   help="distractors and negative queries: own group, or left out")  # fmt: skip
    p.add_argument("--max-grids", type=cli.int_in(0), default=max_grids, help="image grids for this many largest clusters")
    p.add_argument("--no-metrics", action="store_true", help="no ground truth needed: skip the scores")
    p.add_argument("--save", action=argparse.BooleanOptionalAction, default=save, help="write assignments and figures")
    p.add_argument("--run-name", type=cli.name, default=None)
    p.add_argument("--features-root", type=cli.folder, default=FEATURES_DIR)
    p.add_argument("--datasets-root", type=cli.folder, default=DATASETS_DIR)
    p.add_argument("--results-root", type=cli.folder, default=RESULTS_DIR)


def source_and_output(args: argparse.Namespace) -> tuple[ClusteringSource, RunOutput]:
    """The `ClusteringSource` and `RunOutput` that `add_common_args`' flags describe."""
    return from_args(ClusteringSource, args), from_args(RunOutput, args, score=not args.no_metrics)
