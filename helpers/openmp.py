"""Make OpenMP threads sleep, not spin, while they wait: imported before faiss is loaded.

With the default (spinning) policy, faiss's OpenMP threads slow down 10-100x as soon as another
process holds one of the cores (measured: a 64-bit BFlat search of 1,914 queries took 1.4 s on 2
threads instead of 0.01 s on 1). Passive waiting costs nothing measurable on large searches. The
variable is read when the OpenMP runtime loads, so this must run before `import faiss`; a value
the user already set is kept.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import helpers.blas  # noqa: E402, F401  (same rule for faiss's OpenBLAS: the CPU's kernel, set before it loads)
