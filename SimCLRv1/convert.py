"""Convert official SimCLR v1 TensorFlow checkpoints to PyTorch, mapping every variable by name.

The v1 checkpoints hold `global_step`, the backbone under `base_model/` (the plain SimCLR ResNet, named
as in `SimCLRv2.convert.resnet_table`) and the linear head `head_supervised/linear_layer/dense/`.
Unlike the seed's converter, the fc bias is loaded (it was assigned to `fc.weight.bias` and lost).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch

from SimCLRv1.resnet_wider import resnet50_wider
from SimCLRv2.convert import fc_table, resnet_table
from SimCLRv2.resnet import ResNet
from SimCLRv2.tf_checkpoint import TFCheckpoint, convert_by_name


def convert_v1(prefix: str | Path, width: int, ignore: Iterable[str] = ()) -> dict[str, dict[str, torch.Tensor]]:
    """{'state_dict': ResNet-50 (width x) state dict incl. fc weight and bias} from one v1 checkpoint."""
    ckpt = TFCheckpoint(prefix)
    with torch.device("meta"):
        model = resnet50_wider(width)
    return convert_loaded_v1(ckpt, model, ignore)


def convert_loaded_v1(ckpt: TFCheckpoint, model: ResNet, ignore: Iterable[str] = (),
                      ) -> dict[str, dict[str, torch.Tensor]]:
    """convert_v1 on an opened checkpoint and a given (possibly test-sized) plain ResNet."""
    if model.sk_ratio > 0:
        raise ValueError("SimCLR v1 models have no selective kernels; got a model with sk_ratio > 0")
    table = resnet_table(model.layers, sk=False, scope="base_model/")
    table.update(fc_table())
    return {"state_dict": convert_by_name(ckpt, table, model, ignore)}
