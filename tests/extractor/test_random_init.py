"""--weights none builds the same network every run (a recorded seed); stores of other weights are never compared."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from extractor import create_extractor
from extractor.store import store_path, write_features
from fast_search.data import check_sources


def _state(ext):
    return {k: v.clone() for k, v in ext.model.state_dict().items()}


def test_random_weights_are_seeded_and_recorded():
    a, b = create_extractor("resnet18", weights=None), create_extractor("resnet18", weights=None)
    sa, sb = _state(a), _state(b)
    assert all(torch.equal(sa[k], sb[k]) for k in sa)  # two runs, one network
    assert a.params["init_seed"] == 0 and a.name == "resnet18_random"
    c = create_extractor("resnet18", weights=None, init_seed=3)
    assert c.params["init_seed"] == 3 and c.name == "resnet18_random_seed3"
    assert not torch.equal(_state(c)["conv1.weight"], sa["conv1.weight"])
    torch.manual_seed(123)
    expected = torch.rand(1)
    torch.manual_seed(123)
    create_extractor("resnet18", weights=None)
    assert torch.equal(torch.rand(1), expected)  # the caller's generator is left as it was


def _store(root, name, params):
    ids = [f"{name}/{i}_x" for i in range(4)]
    x = np.random.default_rng(0).normal(size=(4, 8)).astype("f4")
    write_features(store_path(name, "net", root), ids, x, method="net", params=params)


def test_stores_of_different_weights_are_not_compared(tmp_path):
    _store(tmp_path, "demo_original", {"weights": None, "init_seed": 0})
    _store(tmp_path, "demo_attacks", {"weights": None, "init_seed": 1})
    with pytest.raises(ValueError, match="init_seed=1.*init_seed=0.*different networks"):
        check_sources("net", ["demo_original"], ["demo_attacks"], 1, tmp_path)
    root = tmp_path / "b"
    _store(root, "demo_original", {"weights": "a.pth"})
    _store(root, "demo_attacks", {"weights": "b.pth"})
    with pytest.raises(ValueError, match="different networks"):
        check_sources("net", ["demo_original"], ["demo_attacks"], 1, root)
    root = tmp_path / "c"  # stores written before seeds were recorded: two different networks
    _store(root, "demo_original", {"weights": None})
    _store(root, "demo_attacks", {"weights": None})
    with pytest.raises(ValueError, match="unseeded random weights"):
        check_sources("net", ["demo_original"], ["demo_attacks"], 1, root)
    root = tmp_path / "d"
    _store(root, "demo_original", {"weights": None, "init_seed": 0})
    _store(root, "demo_attacks", {"weights": None, "init_seed": 0})
    assert check_sources("net", ["demo_original"], ["demo_attacks"], 1, root)["n_database"] == 4
