"""Pieces every trunk shares: width scaling, initialisation, per-example dropout, and the
receptive field and stride of a chain of layers (FCN paper, section 3.1 and Table 1)."""

import jax
import jax.numpy as jnp
from flax import nnx

he_normal = nnx.initializers.variance_scaling(2.0, "fan_in", "truncated_normal")


def scaled(channels: int, width: float) -> int:
    """Channel count at a width multiplier, never below 4."""
    return max(4, int(round(channels * width)))


def dropout(x: jax.Array, rate: float, keys: jax.Array | None) -> jax.Array:
    """Inverted dropout with one key per example; identity when ``keys`` is None."""
    if keys is None or rate == 0.0:
        return x
    keep = jax.vmap(lambda k: jax.random.bernoulli(k, 1.0 - rate, x.shape[1:]))(keys)
    return jnp.where(keep, x / (1.0 - rate), 0.0)


def split_keys(keys: jax.Array | None, count: int) -> list:
    """``count`` independent per-example key arrays from one ([B] keys), or Nones."""
    if keys is None:
        return [None] * count
    split = jax.vmap(lambda k: jax.random.split(k, count))(keys)
    return [split[:, i] for i in range(count)]


def receptive_field(geometry: tuple) -> tuple[int, int]:
    """(receptive field, stride) in input pixels of the last of a chain of (kernel, stride)
    layers: each layer widens the field by (kernel - 1) times the stride before it (the
    "rf size" and "max stride" columns of the paper's Table 1)."""
    field, stride = 1, 1
    for kernel, step in geometry:
        field += (kernel - 1) * stride
        stride *= step
    return field, stride
