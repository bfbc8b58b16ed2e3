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

__all__, __getattr__, __dir__ = lazy_attributes(__name__, {
    "fast_search.block": "block_search",
    "fast_search.data": "SearchData check_sources load_search_data",
    "fast_search.duplicates": "Duplicates find_duplicates",
    "fast_search.experiment": "ExperimentConfig default_search_params run_experiment",
    "fast_search.gallery": "explore_neighbors",
    "fast_search.index": "FLOAT_METRICS METRICS FaissIndex make_index",
    "fast_search.report": "format_table load_results negative_kind_rows process_experiment summary_rows",
    "fast_search.results": "experiment_dir",
})
