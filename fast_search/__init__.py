"""Search experiments on stored features: faiss indexes, retrieval metrics, reports, galleries.

```python
from fast_search import run_experiment, process_experiment, summary_rows, explore_neighbors
run_experiment("demo", "dhash", database=["demo_original", "demo_distractors"],
               queries=["demo_attacks", "demo_negatives"], indexes=["Flat", "IVF64,Flat"], metrics=["cosine"])
process_experiment("demo")          # figures + summary.md / summary.csv
explore_neighbors("demo", k=10)     # Results/demo/neighbors/index.html
```
"""

import helpers.openmp  # noqa: F401  (before faiss loads: OpenMP threads wait passively)

# isort: split
from fast_search.block import block_search
from fast_search.data import SearchData, check_sources, load_search_data
from fast_search.experiment import ExperimentConfig, default_search_params, run_experiment
from fast_search.gallery import explore_neighbors
from fast_search.index import FLOAT_METRICS, METRICS, FaissIndex, make_index
from fast_search.report import format_table, load_results, process_experiment, summary_rows
from fast_search.results import experiment_dir

__all__ = [
    "ExperimentConfig",
    "FLOAT_METRICS",
    "FaissIndex",
    "METRICS",
    "SearchData",
    "block_search",
    "check_sources",
    "default_search_params",
    "experiment_dir",
    "explore_neighbors",
    "format_table",
    "load_results",
    "load_search_data",
    "make_index",
    "process_experiment",
    "run_experiment",
    "summary_rows",
]
