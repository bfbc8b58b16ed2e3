"""save_json/load_json round-trip numpy values and write atomically."""

from __future__ import annotations

import numpy as np

from helpers.jsonio import load_json, save_json


def test_round_trip_with_numpy_values(tmp_path):
    path = tmp_path / "sub" / "r.json"
    save_json({"a": np.float32(0.5), "b": np.arange(3), "c": np.int64(7)}, path)
    assert load_json(path) == {"a": 0.5, "b": [0, 1, 2], "c": 7}
    assert [p.name for p in path.parent.iterdir()] == ["r.json"]  # no temporary file (TMP_PREFIX...) left behind
