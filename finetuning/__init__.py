"""Contrastive fine-tuning (SimCLR, NT-Xent) of registry encoders, and a learned adaptation of frozen features.

Modules: `losses`, `lars`, `schedule`, `model`, `encoders`, `augment`, `data`, `checkpoint`,
`training` (train loop, DDP), `evaluation` (per-epoch retrieval and cluster geometry),
`adaptation` and `adapt_store` (seed 003). Import them directly; nothing is imported here.
"""

import helpers.openmp  # noqa: F401  (before faiss loads: OpenMP threads wait passively)
