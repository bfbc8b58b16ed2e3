"""SimCLR test fixtures: a TensorFlow re-run of the official SimCLR forward pass that writes its
variables under the official names into a small TF checkpoint (reduced depth and width, same
naming rule), plus the reference outputs. TensorFlow is imported once per session, here only."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

BASE = 8  # channels of the stem instead of 64: every layer keeps its name and rank, only smaller
LAYERS = (2, 1, 1, 1)  # a projection block and an identity block in the first stage, one block after
NUM_CLASSES = 10
SK_RATIO = 0.0625


@pytest.fixture(scope="session")
def tf():
    """TensorFlow (CPU), imported once (requirements-convert.txt, which make installs: a broken install fails)."""
    import tensorflow

    return tensorflow


class TFReference:
    """google-research/simclr's TF1 `resnet.py`/`model_util.py` forward pass in eager TF ops.

    Each layer creates its variables the first time it runs, named the way tf.layers names them:
    `conv2d`, `conv2d_1`, ..., `batch_normalization`, ... inside `scope`, in creation order.
    """

    def __init__(self, tf, seed: int):
        self.tf, self.rng, self.vars, self.counts = tf, np.random.default_rng(seed), {}, {}

    def _next(self, scope: str, kind: str) -> str:
        n = self.counts.get((scope, kind), 0)
        self.counts[(scope, kind)] = n + 1
        return f"{scope}{kind}" + ("" if n == 0 else f"_{n}")

    def var(self, name: str, shape: tuple, kind: str):
        if name not in self.vars:
            fan_in = int(np.prod(shape[:-1])) if kind == "kernel" else 1
            value = {"kernel": lambda: self.rng.normal(0, (1.0 / fan_in) ** 0.5, shape),
                     "gamma": lambda: self.rng.uniform(0.5, 1.5, shape),
                     "variance": lambda: self.rng.uniform(0.5, 1.5, shape),
                     "offset": lambda: self.rng.normal(0, 0.2, shape)}[kind]()
            self.vars[name] = value.astype(np.float32)
        assert self.vars[name].shape == tuple(shape), name
        return self.tf.constant(self.vars[name])

    # ---- resnet.py ----
    def fixed_padding(self, x, k):
        beg = (k - 1) // 2
        return self.tf.pad(x, [[0, 0], [beg, k - 1 - beg], [beg, k - 1 - beg], [0, 0]])

    def conv2d_fixed_padding(self, x, filters, k, strides, scope):
        kernel = self.var(self._next(scope, "conv2d") + "/kernel", (k, k, x.shape[-1], filters), "kernel")
        if strides > 1:
            x = self.fixed_padding(x, k)
        return self.tf.nn.conv2d(x, kernel, strides, "SAME" if strides == 1 else "VALID")

    def batch_norm_relu(self, x, scope, relu=True, center=True, name=None):
        name = name or self._next(scope, "batch_normalization")
        c = x.shape[-1]
        gamma = self.var(f"{name}/gamma", (c,), "gamma")
        beta = self.var(f"{name}/beta", (c,), "offset") if center else None
        mean = self.var(f"{name}/moving_mean", (c,), "offset")
        variance = self.var(f"{name}/moving_variance", (c,), "variance")
        x = self.tf.nn.batch_normalization(x, mean, variance, beta, gamma, 1e-5)
        return self.tf.nn.relu(x) if relu else x

    def sk_conv2d(self, x, filters, strides, scope):
        tf = self.tf
        x = self.batch_norm_relu(self.conv2d_fixed_padding(x, 2 * filters, 3, strides, scope), scope)
        x = tf.stack(tf.split(x, 2, axis=3))
        mid = max(int(filters * SK_RATIO), 32)
        g = tf.reduce_mean(tf.reduce_sum(x, axis=0), [1, 2], keepdims=True)
        g = self.batch_norm_relu(self.conv2d_fixed_padding(g, mid, 1, 1, scope), scope)
        mixing = tf.nn.softmax(tf.stack(tf.split(self.conv2d_fixed_padding(g, 2 * filters, 1, 1, scope), 2, axis=3)),
                               axis=0)
        return tf.reduce_sum(x * mixing, axis=0)

    def bottleneck_block(self, x, filters, strides, projection, sk, scope):
        tf = self.tf
        shortcut = x
        if projection:
            if sk:
                shortcut = self.fixed_padding(x, 2) if strides > 1 else x
                shortcut = tf.nn.avg_pool2d(shortcut, 2, strides, "SAME" if strides == 1 else "VALID")
                shortcut = self.conv2d_fixed_padding(shortcut, 4 * filters, 1, 1, scope)
            else:
                shortcut = self.conv2d_fixed_padding(x, 4 * filters, 1, strides, scope)
            shortcut = self.batch_norm_relu(shortcut, scope, relu=False)
        x = self.batch_norm_relu(self.conv2d_fixed_padding(x, filters, 1, 1, scope), scope)
        if sk:
            x = self.sk_conv2d(x, filters, strides, scope)
        else:
            x = self.batch_norm_relu(self.conv2d_fixed_padding(x, filters, 3, strides, scope), scope)
        x = self.batch_norm_relu(self.conv2d_fixed_padding(x, 4 * filters, 1, 1, scope), scope, relu=False)
        return tf.nn.relu(x + shortcut)

    def resnet(self, x, width, sk, scope="base_model/"):
        c = BASE * width
        if sk:
            x = self.batch_norm_relu(self.conv2d_fixed_padding(x, c // 2, 3, 2, scope), scope)
            x = self.batch_norm_relu(self.conv2d_fixed_padding(x, c // 2, 3, 1, scope), scope)
            x = self.conv2d_fixed_padding(x, c, 3, 1, scope)
        else:
            x = self.conv2d_fixed_padding(x, c, 7, 2, scope)
        x = self.batch_norm_relu(x, scope)
        x = self.tf.nn.max_pool2d(x, 3, 2, "SAME")
        for i, blocks in enumerate(LAYERS):
            for j in range(blocks):
                x = self.bottleneck_block(x, c * 2**i, (1 if i == 0 else 2) if j == 0 else 1, j == 0, sk, scope)
        return self.tf.reduce_mean(x, [1, 2])

    # ---- model_util.py ----
    def linear_layer(self, x, units, use_bias, use_bn, scope):
        kernel = self.var(f"{scope}dense/kernel", (x.shape[-1], units), "kernel")
        x = self.tf.matmul(x, kernel)
        if use_bias and not use_bn:
            x = x + self.var(f"{scope}dense/bias", (units,), "offset")
        if use_bn:
            x = self.batch_norm_relu(x, scope, relu=False, center=use_bias, name=f"{scope}batch_normalization")
        return x

    def projection_head(self, h, scope="head_contrastive/", num_layers=3, out_dim=16):
        mid = h.shape[-1]
        for j in range(num_layers):
            last = j == num_layers - 1
            h = self.linear_layer(h, out_dim if last else mid, not last, True, f"{scope}nl_{j}/")
            h = h if last else self.tf.nn.relu(h)
        return h

    def supervised_head(self, h, scope="head_supervised/"):
        return self.linear_layer(h, NUM_CLASSES, True, False, f"{scope}linear_layer/")


def write_tf_checkpoint(tf, prefix: Path, variables: dict[str, np.ndarray]) -> Path:
    """Write `variables` under their exact names as a TF (V2 format) checkpoint at `prefix`."""
    prefix.parent.mkdir(parents=True, exist_ok=True)
    names = sorted(variables)
    tf.raw_ops.SaveV2(prefix=str(prefix), tensor_names=names, shape_and_slices=[""] * len(names),
                      tensors=[tf.constant(variables[n]) for n in names])
    return prefix


@dataclass
class TinyCheckpoint:
    """A reduced official-format checkpoint and the TF outputs computed from the same variables."""

    prefix: Path
    variables: dict[str, np.ndarray]
    width: int
    sk: bool
    image: np.ndarray  # NCHW float32
    outputs: dict[str, np.ndarray] = field(default_factory=dict)  # features, logits, projection


def make_checkpoint(tf, folder: Path, version: int, width: int, sk: bool, seed: int = 0) -> TinyCheckpoint:
    """v1: base_model/ + head_supervised/ + global_step. v2: also ema_model/ copies, head_contrastive/,
    and Momentum slots; the reference outputs use the EMA copy (what the converter picks by default)."""
    rng = np.random.default_rng(seed)
    image = rng.uniform(0, 1, (2, 67, 61, 3)).astype(np.float32)  # odd sizes exercise the SAME paddings
    x = tf.constant(image)
    ref = TFReference(tf, seed)
    outputs = {}
    if version == 1:
        h = ref.resnet(x, width, sk=False)
        outputs["logits"] = ref.supervised_head(h).numpy()
    else:
        plain = TFReference(tf, seed + 1)  # the non-EMA copy: different values, must not be used
        plain_h = plain.resnet(x, width, sk)
        outputs["plain_projection"] = plain.projection_head(plain_h).numpy()
        outputs["plain_features"] = plain_h.numpy()
        h = ref.resnet(x, width, sk, scope="ema_model/base_model/")
        outputs["projection"] = ref.projection_head(h, "ema_model/head_contrastive/").numpy()
        outputs["logits"] = ref.supervised_head(h).numpy()
        ref.vars.update(plain.vars)
        ref.vars.update({f"{n}/Momentum": np.zeros_like(v) for n, v in plain.vars.items()})
    outputs["features"] = h.numpy()
    ref.vars["global_step"] = np.array(1234, dtype=np.int64)
    prefix = write_tf_checkpoint(tf, folder / f"v{version}_{width}x_sk{int(sk)}" / "model.ckpt-1234", ref.vars)
    return TinyCheckpoint(prefix, ref.vars, width, sk, image.transpose(0, 3, 1, 2).copy(), outputs)


@pytest.fixture(scope="session")
def tiny_checkpoints(tf, tmp_path_factory) -> dict[str, TinyCheckpoint]:
    """v1 (2x wide), v2 sk0 and v2 sk1 reduced checkpoints, written once per session."""
    folder = tmp_path_factory.mktemp("tf_ckpt")
    return {"v1": make_checkpoint(tf, folder, 1, 2, False, seed=1),
            "v2_sk0": make_checkpoint(tf, folder, 2, 1, False, seed=2),
            "v2_sk1": make_checkpoint(tf, folder, 2, 1, True, seed=3)}
