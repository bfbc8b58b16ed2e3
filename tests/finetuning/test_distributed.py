"""Negatives gathered across processes WITH gradients: 2 CPU processes (gloo) equal one process on the whole batch."""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from finetuning.losses import nt_xent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, z1: torch.Tensor, z2: torch.Tensor, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    b = z1.shape[0] // world
    a1 = z1[rank * b : (rank + 1) * b].clone().requires_grad_()
    a2 = z2[rank * b : (rank + 1) * b].clone().requires_grad_()
    loss = nt_xent(a1, a2, temperature=0.2, gather=True)
    (loss / world).backward()  # what DDP's gradient averaging amounts to
    torch.save({"loss": loss.detach(), "g1": a1.grad, "g2": a2.grad}, f"{out}.{rank}")
    dist.destroy_process_group()


@pytest.mark.slow
def test_two_processes_match_one_process_on_the_global_batch(tmp_path):
    torch.manual_seed(0)
    z1, z2 = torch.randn(6, 5, dtype=torch.float64), torch.randn(6, 5, dtype=torch.float64)
    out = str(tmp_path / "rank")
    mp.start_processes(_worker, args=(2, _free_port(), z1, z2, out), nprocs=2, start_method="spawn")
    parts = [torch.load(f"{out}.{r}", weights_only=True) for r in range(2)]
    r1, r2 = z1.clone().requires_grad_(), z2.clone().requires_grad_()
    full = nt_xent(r1, r2, temperature=0.2)
    full.backward()
    assert torch.allclose(sum(p["loss"] for p in parts) / 2, full.detach())
    assert torch.allclose(torch.cat([p["g1"] for p in parts]), r1.grad)
    assert torch.allclose(torch.cat([p["g2"] for p in parts]), r2.grad)
