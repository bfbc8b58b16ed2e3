"""The one table writer: CSV (atomic, first-seen columns) and Markdown."""

from __future__ import annotations

import csv

from helpers.tables import markdown_table, write_csv


def test_csv_columns_and_round_trip(tmp_path):
    rows = [{"a": 1, "b": "x"}, {"b": "y", "c": 2.5}]
    path = write_csv(rows, tmp_path / "sub" / "t.csv")
    with open(path, newline="") as f:
        back = list(csv.DictReader(f))
    assert list(back[0]) == ["a", "b", "c"] and back[1] == {"a": "", "b": "y", "c": "2.5"}
    write_csv(rows[:1], path, columns=["b", "a"])
    assert path.read_text().splitlines()[0] == "b,a"
    assert not list(path.parent.glob("*.tmp*"))  # written atomically


def test_markdown():
    text = markdown_table([{"m": "dhash", "r": None}], fmt=lambda c, v: "-" if v is None else v)
    assert text.splitlines() == ["| m | r |", "|---|---|", "| dhash | - |"]
