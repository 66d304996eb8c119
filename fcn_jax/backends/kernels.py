"""The kernels a model asks for, and their plain XLA formulation (any backend).

A ``Kernels`` names one implementation of each operation whose fastest form differs between
backends; ``backends.kernels`` picks the set. ``PLAIN_KERNELS`` is what XLA compiles well
everywhere (``model.fast_paths=off``, and ``auto`` on GPU and TPU): lax's convolutions, its
reduce-window pooling and transposed convolutions, ``jnp.argmax``. The CPU set is in
``backends/cpu.py``. Every set computes the same values and gradients (tests/test_fast_paths.py).
"""

import dataclasses
from collections.abc import Callable

import jax.numpy as jnp
from jax import lax

from fcn_jax.ops import pool
from fcn_jax.ops import upsample as up


@dataclasses.dataclass(frozen=True)
class Kernels:
    """One implementation per operation (frozen: a model holds it as static structure)."""

    name: str
    conv: Callable  # a drop-in for lax.conv_general_dilated (nnx.Conv's conv_general_dilated)
    max_pool: Callable  # 2x2, stride 2, ceil mode: [B, H, W, C] -> [B, ceil(H/2), ceil(W/2), C]
    transposed_conv: Callable  # (x, kernel [2f, 2f, C, O], f) -> [B, (H+1)f, (W+1)f, O]
    per_class_transposed_conv: Callable  # the same for a channel-diagonal kernel (may read
    #                                      only the diagonal)
    class_predictions: Callable  # logits [..., C] -> int32 labels, first maximum


PLAIN_KERNELS = Kernels(
    name="plain",
    conv=lax.conv_general_dilated,
    max_pool=pool.reduce_window_max_pool,
    transposed_conv=up.lax_transposed_conv,
    per_class_transposed_conv=up.lax_transposed_conv,  # the zeros off the diagonal included
    class_predictions=lambda logits: jnp.argmax(logits, axis=-1).astype(jnp.int32),
)
