"""The learned adaptation: learns a planted relation, splits by original, PCA fitted on training rows only."""

from __future__ import annotations

import numpy as np
import pytest

from extractor.store import load_features, write_features
from finetuning.adapt_store import adapted_method, load_pairs, write_adapted
from finetuning.adaptation import AdaptationTrainer, Adapter, cross_validate, group_split, topk_accuracy


def planted(n_originals=60, copies=2, dim=16, signal=4, seed=0):
    """A query shares its original's signal (a 4-d subspace) but not its nuisance, 3x larger.

    Both live in a randomly rotated 16-d space, so raw cosine matches a query to its original
    about at chance, while a map that keeps the signal subspace (shared by both sides) matches all.
    """
    rng = np.random.default_rng(seed)
    rot = np.linalg.qr(rng.normal(size=(dim, dim)))[0]
    s = rng.normal(size=(n_originals, signal))
    groups = np.repeat(np.arange(n_originals), copies)

    def embed(sig):
        noise = 3 * rng.normal(size=(len(sig), dim - signal))
        return (np.hstack([sig, noise]) @ rot.T).astype(np.float32)

    return embed(s[groups]), embed(s)[groups], groups


def test_group_split_never_puts_an_original_on_both_sides():
    groups = np.repeat(np.arange(20), 3)
    train, test = group_split(groups, 0.25, seed=3)
    assert not set(groups[train]) & set(groups[test])
    assert len(set(groups[test])) == 5 and len(train) + len(test) == 60
    with pytest.raises(ValueError, match="test split"):
        group_split(groups, 1.5)


def test_topk_accuracy_ranks_distinct_originals():
    o = np.eye(3, dtype=np.float32)[[0, 0, 1, 2]]
    q = np.array([[1, 0, 0], [0, 1, 0.1], [0, 1, 0], [0, 0.9, 1]], np.float32)
    acc = topk_accuracy(q, o, [0, 0, 1, 2], ks=(1, 2, 3))
    assert acc == {"top1": 0.75, "top2": 0.75, "top3": 1.0}


def test_topk_accuracy_counts_ties_against_the_query():
    """Issue 21 (one evaluation path): ties counted in the query's favour before; fast_search counts them against."""
    o = np.eye(2, dtype=np.float32)
    q = np.array([[1, 1], [0, 1]], np.float32)  # the first query is equally close to both originals
    assert topk_accuracy(q, o, [0, 1], ks=(1, 2)) == {"top1": 0.5, "top2": 1.0}


@pytest.mark.parametrize(("model", "floor"), [("linear", 0.9), ("linear-relu", 0.6)])
def test_adapter_learns_planted_relation_from_chance_to_near_one(model, floor):
    q, o, g = planted(n_originals=200)
    train, test = group_split(g, 0.25, seed=0)
    trainer = AdaptationTrainer(model=model, temperature=0.3, epochs=100, lr=1e-2, seed=0)
    trainer.fit(q[train], o[train], g[train])
    before = topk_accuracy(q[test], o[test], g[test])["top1"]
    after = trainer.score(q[test], o[test], g[test])["top1"]
    assert before < 0.15  # chance is 1/50 among the held-out originals
    assert after > floor  # held-out originals, never seen in training
    assert trainer.losses_[-1] < trainer.losses_[0]


def test_minibatch_training_also_learns():
    q, o, g = planted(n_originals=200, seed=1)
    trainer = AdaptationTrainer(model="linear", temperature=0.3, epochs=20, batch_size=64, lr=1e-2).fit(q, o, g)
    assert trainer.score(q, o, g)["top1"] > 0.9


def test_pca_is_fitted_on_training_pairs_only():
    q, o, g = planted(n_originals=40)
    train, test = group_split(g, 0.25, seed=0)
    q_poisoned = q.copy()
    q_poisoned[test] += 1e3  # if the PCA saw test rows, its mean and components would move
    trainer = AdaptationTrainer(pca=8, epochs=2).fit(q_poisoned[train], o[train], g[train])
    _, first = np.unique(g[train], return_index=True)
    train_rows = np.concatenate([q[train], o[train][first]])
    assert np.allclose(trainer.pca_.mean_, train_rows.mean(axis=0), atol=1e-5)
    assert trainer.pca_.n_samples_ == len(train_rows)
    # cross_validate refits per run on that run's training split only
    runs = cross_validate(q_poisoned, o, g, runs=2, test_split=0.25, pca=8, epochs=2)
    for run in runs:
        tr, _ = group_split(g, 0.25, seed=run.run)
        assert run.n_train == len(tr)


def test_adapter_rejects_unknown_model_and_transform_before_fit():
    with pytest.raises(ValueError, match="linear"):
        Adapter(4, kind="mlp")
    with pytest.raises(RuntimeError, match="fit"):
        AdaptationTrainer().transform(np.zeros((2, 4), np.float32))


def test_pairs_from_store_and_adapted_features_written_back(tmp_path):
    q, o, g = planted(n_originals=10, copies=2, dim=8)
    orig_ids = [f"orig/{i}" for i in range(10)]
    query_ids = [f"copies/{i}_attack{k}" for i, k in zip(g, np.tile([0, 1], 10), strict=True)] + ["copies/99_x"]
    write_features(tmp_path / "orig" / "m.h5", orig_ids, o[::2], method="m", dataset="orig")
    write_features(tmp_path / "copies" / "m.h5", query_ids, np.vstack([q, q[:1]]), method="m", dataset="copies")
    pairs = load_pairs("copies", "orig", "m", root=tmp_path)
    assert pairs.n_negative == 1 and len(pairs.queries) == 20
    assert np.array_equal(pairs.originals, o)
    trainer = AdaptationTrainer(epochs=5).fit(pairs.queries, pairs.originals, pairs.groups)
    path = write_adapted(trainer, "orig", "m", root=tmp_path)
    assert path.name == "m+adapt.h5"
    f = load_features("orig", "m+adapt", root=tmp_path)
    assert list(f.ids) == orig_ids and f.features.shape == (10, 8)
    assert np.allclose(np.linalg.norm(f.features, axis=1), 1, atol=1e-5)
    assert adapted_method("a/b c") == "a_b_c+adapt"
