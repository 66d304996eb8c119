"""Pieces every trunk shares: width scaling, initialisation, per-example dropout, chains of
convolutions with overlapping pooling, and the receptive field and stride of a chain of
layers (FCN paper, section 3.1 and Table 1)."""

import jax
import jax.numpy as jnp
from flax import nnx

from fcn_jax.ops.pool import overlapping_max_pool

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


def add_conv_chain(module: nnx.Module, chain: tuple, in_channels: int, width: float, *,
                   rngs: nnx.Rngs) -> int:
    """Give ``module`` one "SAME" convolution per (name, kernel, stride, channels at width
    1.0, pooled after) of ``chain``, with its kernels and dtype; returns the output channels."""
    for name, kernel, stride, channels, _ in chain:
        out_channels = scaled(channels, width)
        setattr(module, name, nnx.Conv(in_channels, out_channels, (kernel, kernel),
                                       strides=stride, padding="SAME", kernel_init=he_normal,
                                       dtype=module.dtype,
                                       conv_general_dilated=module.kernels.conv, rngs=rngs))
        in_channels = out_channels
    return in_channels


def run_conv_chain(module: nnx.Module, chain: tuple, x: jax.Array, features: dict) -> jax.Array:
    """Each convolution of ``chain`` with ReLU (its output into ``features``), then a 3x3
    stride-2 max pool where the chain says so."""
    for name, _, _, _, pooled in chain:
        x = features[name] = jax.nn.relu(getattr(module, name)(x))
        if pooled:
            x = overlapping_max_pool(x, 2)
    return x


def chain_geometry(chain: tuple) -> tuple:
    """(kernel, stride) of each layer of a chain, its pools included."""
    layers = []
    for _, kernel, stride, _, pooled in chain:
        layers += [(kernel, stride)] + [(3, 2)] * pooled
    return tuple(layers)
