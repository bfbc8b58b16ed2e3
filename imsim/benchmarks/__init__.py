"""benchmarks package."""

import helpers.openmp  # noqa: F401  (before faiss loads: OpenMP threads wait passively)
