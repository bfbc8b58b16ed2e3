"""Convert official SimCLR v2 TensorFlow checkpoints to PyTorch, mapping every variable by name.

The TF1 code (google-research/simclr `resnet.py`) creates its layers inside `base_model/` with
auto-numbered names: `conv2d`, `conv2d_1`, ... and `batch_normalization`, `batch_normalization_1`, ...
in creation order. `resnet_table` replays that order from the architecture (stem; per block: projection
shortcut, conv1, the 3x3 or SK unit, conv3) and names the TF variable behind every PyTorch tensor.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch

from SimCLRv2.resnet import ContrastiveHead, ResNet, get_resnet
from SimCLRv2.tf_checkpoint import ConversionError, Table, TFCheckpoint, convert_by_name

SUPERVISED = "head_supervised/linear_layer/dense/"


class _Namer:
    """Hands out TF1 layer names in creation order, the way tf.layers uniquifies them in one scope."""

    def __init__(self, scope: str):
        self.scope, self.counts, self.table = scope, {}, {}

    def _next(self, kind: str) -> str:
        n = self.counts.get(kind, 0)
        self.counts[kind] = n + 1
        return f"{self.scope}{kind}{'' if n == 0 else f'_{n}'}/"

    def conv(self, key: str) -> None:
        self.table[f"{key}.weight"] = (self._next("conv2d") + "kernel", "conv")

    def bn(self, key: str, center: bool = True) -> None:
        add_bn(self.table, key, self._next("batch_normalization"), center)


def add_bn(table: Table, key: str, tf_scope: str, center: bool = True) -> None:
    """gamma/beta/moving_mean/moving_variance -> weight/bias/running_mean/running_var."""
    table[f"{key}.weight"] = (tf_scope + "gamma", "copy")
    if center:
        table[f"{key}.bias"] = (tf_scope + "beta", "copy")
    table[f"{key}.running_mean"] = (tf_scope + "moving_mean", "copy")
    table[f"{key}.running_var"] = (tf_scope + "moving_variance", "copy")


def resnet_table(layers: Iterable[int], sk: bool, scope: str = "base_model/", prefix: str = "") -> Table:
    """torch key -> TF variable for a SimCLR ResNet backbone (without fc), in TF creation order."""
    names = _Namer(scope)
    names.conv(f"{prefix}stem.conv1")
    if sk:  # three 3x3 convs; the BN-ReLU after the third comes after the 'initial_conv' identity
        names.bn(f"{prefix}stem.bn1")
        names.conv(f"{prefix}stem.conv2")
        names.bn(f"{prefix}stem.bn2")
        names.conv(f"{prefix}stem.conv3")
        names.bn(f"{prefix}stem.bn3")
    else:
        names.bn(f"{prefix}stem.bn1")
    for i, blocks in enumerate(layers):
        for j in range(blocks):
            block = f"{prefix}layer{i + 1}.{j}."
            if j == 0:  # the projection shortcut is built before the residual branch
                names.conv(block + "downsample.conv")
                names.bn(block + "downsample.bn")
            names.conv(block + "conv1")
            names.bn(block + "bn1")
            if sk:
                names.conv(block + "sk.conv")
                names.bn(block + "sk.bn")
                names.conv(block + "sk.fc1")
                names.bn(block + "sk.fc_bn")
                names.conv(block + "sk.fc2")
            else:
                names.conv(block + "conv2")
                names.bn(block + "bn2")
            names.conv(block + "conv3")
            names.bn(block + "bn3")
    return names.table


def fc_table(supervised_scope: str = SUPERVISED, prefix: str = "") -> Table:
    """The supervised linear head (fc) of the backbone: kernel transposed, and its bias."""
    return {f"{prefix}fc.weight": (supervised_scope + "kernel", "dense"),
            f"{prefix}fc.bias": (supervised_scope + "bias", "copy")}


def head_table(num_layers: int = 3, scope: str = "head_contrastive/", prefix: str = "") -> Table:
    """Contrastive head nl_0..nl_{n-1}: dense kernel (no bias) + BN; the last BN has no beta."""
    table: Table = {}
    for i in range(num_layers):
        table[f"{prefix}linears.{i}.weight"] = (f"{scope}nl_{i}/dense/kernel", "dense")
        add_bn(table, f"{prefix}bns.{i}", f"{scope}nl_{i}/batch_normalization/", center=i < num_layers - 1)
    return table


def convert_v2(prefix: str | Path, model: str, ema: bool = True, supervised: bool = False,
               ignore: Iterable[str] = ()) -> dict[str, dict[str, torch.Tensor]]:
    """{'encoder': backbone+fc state dict, 'head': contrastive head} from one v2 TF checkpoint.

    ema picks the `ema_model/` copy (the other copy is ignored); supervised=True skips the
    contrastive head (the supervised baselines carry an untrained one) and returns no 'head'.
    """
    ckpt = TFCheckpoint(prefix)
    with torch.device("meta"):  # shapes only: no memory for the (up to 3 GB) model
        backbone, head = get_resnet(model)
    return convert_loaded_v2(ckpt, backbone, None if supervised else head, ema, ignore)


def convert_loaded_v2(ckpt: TFCheckpoint, backbone: ResNet, head: ContrastiveHead | None, ema: bool = True,
                      ignore: Iterable[str] = ()) -> dict[str, dict[str, torch.Tensor]]:
    """convert_v2 on an opened checkpoint and given (possibly test-sized) modules; head=None skips it."""
    if ema and not any(n.startswith("ema_model/") for n in ckpt.shapes):
        raise ConversionError(f"{ckpt.prefix} has no EMA weights (no 'ema_model/' variables); "
                              "convert it with ema=False (download.py --no-ema)")
    scope = "ema_model/" if ema else ""
    ignore = list(ignore) + (["base_model/*", "head_contrastive/*"] if ema else ["ema_model/*"])
    sup_scope = SUPERVISED
    if ema and f"ema_model/{SUPERVISED}kernel" in ckpt.shapes:  # use an EMA copy of fc when there is one
        sup_scope = f"ema_model/{SUPERVISED}"
        ignore.append(f"{SUPERVISED}*")
    table = resnet_table(backbone.layers, backbone.sk_ratio > 0, f"{scope}base_model/", "encoder.")
    table.update(fc_table(sup_scope, "encoder."))
    modules = {"encoder": backbone}
    if head is None:
        ignore.append(f"{scope}head_contrastive/*")
    else:
        table.update(head_table(len(head.linears), f"{scope}head_contrastive/", "head."))
        modules["head"] = head
    state = convert_by_name(ckpt, table, torch.nn.ModuleDict(modules), ignore)
    return {name: {k[len(name) + 1:]: v for k, v in state.items() if k.startswith(name + ".")}
            for name in modules}
