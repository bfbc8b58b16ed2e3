"""demo.py (what `make demo` runs) goes end to end on a small demo set and prints the table."""

from __future__ import annotations

import socket

import pytest

import demo


@pytest.mark.slow
def test_demo_runs_end_to_end_offline(tmp_path, monkeypatch, capsys):
    real_connect = socket.socket.connect

    def no_network(sock, *args, **kwargs):
        if sock.family == socket.AF_UNIX:  # DataLoader workers pass tensors over local sockets
            return real_connect(sock, *args, **kwargs)
        raise OSError("network access attempted during the demo")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    roots = ["--datasets-root", tmp_path / "Datasets", "--features-root", tmp_path / "Features"]
    roots += ["--results-root", tmp_path / "Results"]
    code = demo.main(["--distractors", "60", "--photo-distractors", "20", "--extra-negatives", "10", "--methods", "dhash", "--neural", "efficientnet_lite0", "resnet50", *map(str, roots)])
    out = capsys.readouterr().out
    assert code == 0
    header = "| method | index | recall@1 | recall@5 | recall@10 | mAP@10 | recall@1%FPR | micro-AP | DISC21 recall@P90 |"
    assert header in out
    assert "| dhash | BFlat--hamming |" in out and "BIVF" in out
    assert "| efficientnet_lite0 | Flat--cosine |" in out and "| efficientnet_lite0 | IVF" in out
    assert "| efficientnet_lite0 |" in out.split("Clustering of originals")[1]
    assert "By kind of negative query" in out and "| dhash | BFlat--hamming | photo |" in out
    assert "| efficientnet_lite0 | Flat--cosine | procedural |" in out
    assert "skipping resnet50" in out  # no weights on disk: says how to get them instead of failing
    results = tmp_path / "Results" / "demo-dhash"
    for name in ("results.json", "summary.md", "summary.csv", "neighbors/index.html", "attacks.png",
                 "summary_attacks.csv"):
        assert (results / name).is_file(), name
    assert (tmp_path / "Results" / "demo_attack_heatmap.png").is_file()  # methods x attack families
    assert list((tmp_path / "Results" / "clustering").rglob("scores.csv"))
