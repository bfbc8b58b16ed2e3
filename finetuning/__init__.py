"""Contrastive fine-tuning of registry encoders (SimCLR, or SSCD for copy detection), and a learned adaptation.

Modules: `losses` (NT-Xent, SSCD's InfoNCE + KoLeo, mixup), `lars`, `schedule`, `model`, `encoders`,
`augment`, `copy_policy` (SSCD's augmentation list), `data`, `checkpoint`, `training` (train loop,
DDP, recipes), `evaluation` (per-epoch retrieval and cluster geometry), `copy_eval` (honest split,
held-out attacks, score normalisation),
`adaptation` and `adapt_store` (seed 003). Import them directly; nothing is imported here.
"""

import helpers.openmp  # noqa: F401  (before faiss loads: OpenMP threads wait passively)
