"""The training loop: a step lowers the loss, --resume is exact, checkpoints load safely, bad input fails clearly."""

from __future__ import annotations

import math

import pytest
import torch

from finetuning.checkpoint import list_checkpoints, load_checkpoint
from finetuning.losses import nt_xent
from finetuning.model import ProjectionHead, SimCLR
from finetuning.training import resolve_lr, train
from tests.finetuning._tiny import config, tiny_encoder


def test_one_training_step_lowers_the_loss():
    torch.manual_seed(0)
    model = SimCLR(tiny_encoder(), ProjectionHead(8, [16, 8]))
    x1, x2 = torch.rand(8, 3, 16, 16), torch.rand(8, 3, 16, 16)
    x2 = x1 + 0.05 * x2  # positives are close copies

    def loss():
        z = model(torch.cat([x1, x2]))
        return nt_xent(*z.chunk(2), temperature=0.5)

    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    before = loss()
    opt.zero_grad()
    before.backward()
    opt.step()
    assert loss().item() < before.item()


@pytest.mark.slow
def test_resume_reproduces_uninterrupted_run_bitwise(tmp_path, image_folder):
    full = config(tmp_path / "a", image_folder)
    history = train(full, encoder=tiny_encoder(), dim=8)
    assert len(history["epochs"]) == 3 and all(math.isfinite(v) for v in history["loss"])
    interrupted = config(tmp_path / "b", image_folder)
    train(interrupted, encoder=tiny_encoder(), dim=8, stop_after=1)
    assert sorted(list_checkpoints(tmp_path / "b" / "ckpt" / "run")) == [0, 1]
    resumed = train(interrupted, resume="latest", encoder=tiny_encoder(seed=5), dim=8)
    a = load_checkpoint(tmp_path / "a" / "ckpt" / "run" / "epoch_003.pth")
    b = load_checkpoint(tmp_path / "b" / "ckpt" / "run" / "epoch_003.pth")
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    assert resumed["loss"] == history["loss"] and resumed["lr"] == history["lr"]
    # logs and figure written next to the results
    results = tmp_path / "b" / "results" / "run"
    assert (results / "train_log.csv").read_text().count("\n") == 1 + len(history["loss"])
    assert (results / "training.png").is_file() and (results / "train_history.json").is_file()


def test_fresh_run_refuses_to_overwrite_and_resume_checks_architecture(tmp_path, image_folder):
    cfg = config(tmp_path, image_folder, epochs=1)
    train(cfg, encoder=tiny_encoder(), dim=8)
    with pytest.raises(FileExistsError, match="--resume"):
        train(cfg, encoder=tiny_encoder(), dim=8)
    other = config(tmp_path, image_folder, epochs=1, head_sizes=[32, 8])
    with pytest.raises(ValueError, match="another architecture"):
        train(other, resume="latest", encoder=tiny_encoder(), dim=8)
    with pytest.raises(ValueError, match="another architecture"):
        train(config(tmp_path, image_folder, epochs=1), resume="latest", encoder=tiny_encoder(width=4), dim=4)
    with pytest.raises(ValueError, match="epochs: checkpoint 1, now 2"):  # the cosine schedule would not match
        train(config(tmp_path, image_folder, epochs=2), resume="latest", encoder=tiny_encoder(), dim=8)


def test_folder_with_fewer_images_than_the_batch(tmp_path, image_folder):
    with pytest.raises(ValueError, match="fewer than one batch"):
        train(config(tmp_path, image_folder, batch_size=16), encoder=tiny_encoder(), dim=8)


def test_unknown_encoder_name_lists_valid_ones(tmp_path, image_folder):
    with pytest.raises(ValueError, match="unknown extractor 'no_such_net'.*resnet18"):
        train(config(tmp_path, image_folder, encoder="no_such_net"))
    with pytest.raises(ValueError, match="cannot be fine-tuned"):
        train(config(tmp_path, image_folder, encoder="dhash"))


def test_unknown_optimizer_and_lr_rule(tmp_path, image_folder):
    with pytest.raises(ValueError, match="lars"):
        train(config(tmp_path, image_folder, optimizer="rmsprop"), encoder=tiny_encoder(), dim=8)
    cfg = config(tmp_path, image_folder, optimizer="lars", lr=None, batch_size=32)
    assert resolve_lr(cfg, world=8) == pytest.approx(0.08)
    assert resolve_lr(config(tmp_path, image_folder, optimizer="adam", lr=None), world=1) == 1e-3


def test_failed_run_does_not_block_the_corrected_rerun(tmp_path, image_folder, monkeypatch):
    """Issue 12: a run that fails in its first epoch leaves only the untrained epoch 0; the rerun replaces it."""
    import finetuning.training as T

    def fail(*args, **kwargs):
        raise FloatingPointError("loss is NaN")

    cfg = config(tmp_path, image_folder, epochs=1)
    with monkeypatch.context() as m:
        m.setattr(T, "train_epoch", fail)
        with pytest.raises(FloatingPointError):
            train(cfg, encoder=tiny_encoder(), dim=8)
    assert sorted(list_checkpoints(tmp_path / "ckpt" / "run")) == [0]
    train(cfg, encoder=tiny_encoder(), dim=8)
    assert sorted(list_checkpoints(tmp_path / "ckpt" / "run")) == [0, 1]


@pytest.mark.parametrize("name", ["..", "a/b", "", "/abs"])
def test_run_names_are_plain_folder_names(tmp_path, image_folder, name):
    with pytest.raises(ValueError, match="plain folder name"):
        config(tmp_path, image_folder, name=name)
