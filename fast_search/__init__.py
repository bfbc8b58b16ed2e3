"""Search experiments on stored features: faiss indexes, retrieval metrics, reports, galleries.

```python
from fast_search import run_experiment, process_experiment, summary_rows, explore_neighbors
run_experiment("demo", "dhash", database=["demo_original", "demo_distractors"],
               queries=["demo_attacks", "demo_negatives"], indexes=["Flat", "IVF64,Flat"], metrics=["cosine"])
process_experiment("demo")          # figures + summary.md / summary.csv
explore_neighbors("demo", k=10)     # Results/demo/neighbors/index.html
```

Names are imported on first use (helpers/lazy.py): ``import fast_search`` loads neither torch
nor faiss nor matplotlib until a function that needs them is used.
"""

import helpers.openmp  # noqa: F401  (before faiss loads: OpenMP threads wait passively)
from helpers.lazy import lazy_attributes

_NAMES = {
    "block_search": "fast_search.block",
    "SearchData": "fast_search.data",
    "check_sources": "fast_search.data",
    "load_search_data": "fast_search.data",
    "ExperimentConfig": "fast_search.experiment",
    "default_search_params": "fast_search.experiment",
    "run_experiment": "fast_search.experiment",
    "explore_neighbors": "fast_search.gallery",
    "FLOAT_METRICS": "fast_search.index",
    "METRICS": "fast_search.index",
    "FaissIndex": "fast_search.index",
    "make_index": "fast_search.index",
    "format_table": "fast_search.report",
    "load_results": "fast_search.report",
    "process_experiment": "fast_search.report",
    "summary_rows": "fast_search.report",
    "experiment_dir": "fast_search.results",
}
__all__ = sorted(_NAMES)
__getattr__, __dir__ = lazy_attributes(__name__, _NAMES)
