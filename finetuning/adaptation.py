# ruff: noqa: E741  (D, I) is faiss's fixed name for k-NN distances and ids
"""A learned adaptation of frozen features (seed 003): a small module trained with symmetric InfoNCE.

Pairs are (query embedding, embedding of its original). `AdaptationTrainer.fit` fits an optional
PCA on the training pairs only, then trains `Adapter` so a query's adapted embedding is closest to
its original's; `score` gives top-k accuracy among the distinct originals of held-out pairs, and
`group_split` keeps every pair of an original on the same side of the split.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.decomposition import PCA
from torch import nn
from tqdm.auto import trange

from finetuning.losses import symmetric_info_nce
from finetuning.names import ADAPTATION_MODELS

MODELS = ADAPTATION_MODELS


class Adapter(nn.Module):
    """Linear map (identity-initialised when square), optionally followed by ReLU.

    ``kind='original'`` is the seed's module: Linear without bias to `out_dim` (1024) then ReLU.
    """

    def __init__(self, in_dim: int, out_dim: int | None = None, kind: str = "linear") -> None:
        super().__init__()
        if kind not in MODELS:
            raise ValueError(f"unknown adaptation model {kind!r}; valid: {', '.join(MODELS)}")
        if out_dim is None:
            out_dim = 1024 if kind == "original" else in_dim
        self.kind = kind
        self.linear = nn.Linear(in_dim, out_dim, bias=kind != "original")
        if in_dim == out_dim:
            with torch.no_grad():
                self.linear.weight.copy_(torch.eye(in_dim) + 0.01 * torch.randn(in_dim, in_dim))
                if self.linear.bias is not None:
                    self.linear.bias.zero_()
        self.relu = kind in ("linear-relu", "original")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.linear(x)
        return torch.relu(y) if self.relu else y


def group_split(groups: Sequence, test_split: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) row indices with about `test_split` of the GROUPS held out; no group on both sides."""
    if not 0 < test_split < 1:
        raise ValueError(f"test split must be in (0, 1), got {test_split}")
    groups = np.asarray(groups)
    uniq = np.unique(groups)
    if len(uniq) < 2:
        raise ValueError(f"need at least 2 distinct originals to split, got {len(uniq)}")
    rng = np.random.default_rng(seed)
    n_test = min(len(uniq) - 1, max(1, round(test_split * len(uniq))))
    test_groups = rng.permutation(uniq)[:n_test]
    is_test = np.isin(groups, test_groups)
    return np.flatnonzero(~is_test), np.flatnonzero(is_test)


def topk_accuracy(queries: np.ndarray, originals: np.ndarray, groups: Sequence, ks: Sequence[int] = (1, 3, 5)) -> dict[str, float]:
    """Share of queries whose original is among the k most cosine-similar distinct originals of the set.

    Through fast_search's one evaluation path (exact search, `fast_search.metrics.recall_at_k`):
    ties count against the query, as everywhere else in the library.
    """
    from fast_search.block import array_blocks, block_search
    from fast_search.metrics import recall_at_k

    groups = np.asarray(groups)
    _, first, inverse = np.unique(groups, return_index=True, return_inverse=True)
    xb = np.asarray(originals, dtype=np.float32)[first]
    width = max(ks) + 1  # one more column than k closes ties
    D, I, _ = block_search(np.asarray(queries, dtype=np.float32), array_blocks(xb), min(width, len(xb)), "cosine")
    if D.shape[1] < width:  # fewer originals than k + 1: pad with "no result"
        extra = width - D.shape[1]
        D = np.hstack([D, np.full((len(D), extra), np.inf, D.dtype)])
        I = np.hstack([I, np.full((len(I), extra), -1, I.dtype)])
    return {f"top{k}": recall_at_k(D, I, inverse.astype(np.int64), k) for k in ks}


@dataclass
class RunResult:
    """One held-out run: accuracy of the raw (PCA'd) features and of the adapted ones."""

    run: int
    n_train: int
    n_test: int
    baseline: dict[str, float]
    adapted: dict[str, float]
    final_loss: float
    adapted_top1_ci: list[float | None] | None = None  # 95 % bootstrap interval over the test queries
    checks: dict | None = None  # what `finetuning.protocol.check_pairs_disjoint` verified


class AdaptationTrainer:
    """PCA (optional, fitted on training rows only) + `Adapter`, trained with symmetric InfoNCE.

    `batch_size=None` trains full-batch. Learned: `pca_` (or None), `module_`, `losses_`.
    """

    def __init__(
        self,
        model: str = "linear",
        out_dim: int | None = None,
        pca: int | None = None,
        temperature: float = 0.07,
        epochs: int = 150,
        batch_size: int | None = None,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        seed: int = 0,
        device: str = "cpu",
    ) -> None:
        self.model = model
        self.out_dim = out_dim
        self.pca = pca
        self.temperature = temperature
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.seed = seed
        self.device = device

    def _reduce(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        return x if self.pca_ is None else self.pca_.transform(x).astype(np.float32)

    def fit(self, queries: np.ndarray, originals: np.ndarray, groups: Sequence | None = None) -> AdaptationTrainer:
        """Learn from paired rows (query i copies original i); `groups` marks pairs sharing an original."""
        queries, originals = np.asarray(queries, np.float32), np.asarray(originals, np.float32)
        if queries.shape != originals.shape or queries.ndim != 2:
            raise ValueError(f"queries {queries.shape} and originals {originals.shape} must be (N, D) alike")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        groups = np.arange(len(queries)) if groups is None else np.asarray(groups)
        torch.manual_seed(self.seed)
        self.pca_ = None
        if self.pca:
            _, first = np.unique(groups, return_index=True)
            rows = np.concatenate([queries, originals[first]])
            if self.pca > min(rows.shape):
                raise ValueError(f"pca={self.pca} exceeds min(n_rows, dim) = {min(rows.shape)} of the training split")
            self.pca_ = PCA(self.pca, random_state=self.seed).fit(rows)
        q = torch.as_tensor(self._reduce(queries), device=self.device)
        o = torch.as_tensor(self._reduce(originals), device=self.device)
        g = torch.as_tensor(np.unique(groups, return_inverse=True)[1], device=self.device)
        self.module_ = Adapter(q.shape[1], self.out_dim, self.model).to(self.device)
        opt = torch.optim.Adam(self.module_.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        bs = len(q) if not self.batch_size else min(self.batch_size, len(q))
        gen = torch.Generator().manual_seed(self.seed)
        self.losses_ = []
        for _ in trange(self.epochs, desc="adaptation", leave=False, disable=self.epochs < 50):
            order = torch.randperm(len(q), generator=gen).to(self.device) if bs < len(q) else torch.arange(len(q))
            total = 0.0
            for start in range(0, len(q), bs):
                idx = order[start : start + bs]
                if len(idx) < 2:
                    continue
                loss = symmetric_info_nce(self.module_(q[idx]), self.module_(o[idx]), self.temperature, g[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(idx)
            self.losses_.append(total / len(q))
        return self

    @torch.no_grad()
    def transform(self, x: np.ndarray, batch: int = 65536) -> np.ndarray:
        """Adapted, L2-normalised features (float32) of any rows of the original feature space."""
        if not hasattr(self, "module_"):
            raise RuntimeError("AdaptationTrainer is not fitted: call fit(queries, originals) first")
        self.module_.eval()
        out = []
        for start in range(0, len(x), batch):
            chunk = torch.as_tensor(self._reduce(x[start : start + batch]), device=self.device)
            out.append(F.normalize(self.module_(chunk), dim=1).cpu().numpy())
        dim = self.module_.linear.out_features
        return np.concatenate(out) if out else np.zeros((0, dim), np.float32)

    def score(self, queries: np.ndarray, originals: np.ndarray, groups: Sequence | None = None, ks=(1, 3, 5)) -> dict[str, float]:
        """Top-k accuracy of adapted queries among the distinct adapted originals."""
        groups = np.arange(len(queries)) if groups is None else groups
        return topk_accuracy(self.transform(queries), self.transform(originals), groups, ks)

    def baseline(self, queries: np.ndarray, originals: np.ndarray, groups: Sequence | None = None, ks=(1, 3, 5)) -> dict[str, float]:
        """Top-k accuracy without the module (after the PCA, if any): what adaptation must beat."""
        groups = np.arange(len(queries)) if groups is None else groups
        return topk_accuracy(self._reduce(queries), self._reduce(originals), groups, ks)


def cross_validate(
    queries: np.ndarray,
    originals: np.ndarray,
    groups: Sequence,
    runs: int = 1,
    test_split: float = 0.25,
    ks: Sequence[int] = (1, 3, 5),
    families: Sequence[str] | None = None,
    **params,
) -> list[RunResult]:
    """`runs` trainings, each on a different group split (seed = run), scored on its held-out originals.

    With `families` (the attack family of each pair) the test side also keeps only the pairs of
    held-out families (about `test_split` of them, another draw per run) and the training side
    only the others, so no attack family is both learnt and scored; `finetuning.protocol.
    check_pairs_disjoint` verifies originals, families and feature rows (identical images give
    identical rows) before each run is scored, and a bootstrap interval of the adapted top-1 over
    the test queries is reported.
    """
    from finetuning.protocol import bootstrap_ci, check_pairs_disjoint

    groups = np.asarray(groups)
    fams = None if families is None else np.asarray([str(f) for f in families], dtype=object)
    results = []
    for run in range(runs):
        train_idx, test_idx = group_split(groups, test_split, seed=run)
        if fams is not None:
            held_train, held_test = group_split(fams, test_split, seed=1000 + run)
            train_idx = np.intersect1d(train_idx, held_train)
            test_idx = np.intersect1d(test_idx, held_test)
        checks = check_pairs_disjoint(queries, originals, groups, train_idx, test_idx, fams)
        trainer = AdaptationTrainer(**{**params, "seed": run}).fit(
            queries[train_idx], originals[train_idx], groups[train_idx]
        )
        tq, to, tg = queries[test_idx], originals[test_idx], groups[test_idx]
        adapted_q, adapted_o = trainer.transform(tq), trainer.transform(to)
        def top1(rows, q=adapted_q, o=adapted_o, g=tg):
            return topk_accuracy(q[rows], o[rows], g[rows], (1,))["top1"]

        ci = bootstrap_ci(top1, np.ones(len(tq), dtype=bool), n=200, seed=run)
        results.append(
            RunResult(
                run=run,
                n_train=len(train_idx),
                n_test=len(test_idx),
                baseline=trainer.baseline(tq, to, tg, ks),
                adapted=trainer.score(tq, to, tg, ks),
                final_loss=trainer.losses_[-1] if trainer.losses_ else float("nan"),
                adapted_top1_ci=list(ci),
                checks=checks,
            )
        )
    return results
