"""The upsampling layers of an FCN, chosen by ``config.model.decoder`` (FCN paper, section 3.3).

Each FCN upsampling point (upscore2, upscore_pool4 and the final upscore/upscore16/upscore8)
takes a class-score map at some stride and returns it ``factor`` times larger, cropped to a
given size. The paper upsamples by backwards strided convolution; the alternatives here are
the fixed unpooling operators of earlier work and SegNet's max-unpooling, so one config key
swaps the decoder while the trunk, data and budget stay the same:

- ``bilinear``: transposed conv, kernel 2f, stride f, bilinear, fixed (the reference release);
- ``learned_bilinear``: the same, learned from bilinear initialisation (the paper's 2x layers);
- ``learned_random``: the same, learned from random initialisation;
- ``nearest``: nearest-neighbour unpooling (fixed);
- ``bed_of_nails``: log2(f) stages of 2x bed of nails, each followed by a learned 3x3 conv;
- ``max_unpool``: log2(f) stages of 2x max-unpooling at the encoder's pooling switches, each
  followed by a learned 3x3 conv (SegNet-style).

The 3x3 convs of the two sparse unpoolings start as the tent filter [1/2, 1, 1/2] per class,
so bed of nails starts as exact 2x linear interpolation (zero insertion followed by that
filter is what a stride-2 transposed conv does) and max-unpooling as its switch-placed twin.

A decoder is one class registered under its config name (``@register("name")``), built as
``cls(channels, factor, stride=..., kernels=..., dtype=..., rngs=...)`` and called as
``layer(scores, height, width, features)`` with the trunk's feature dict, from which it
takes what it needs (max-unpooling: the pooling switches). docs/configs.md shows a new one.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from fcn_jax.backends.kernels import PLAIN_KERNELS, Kernels
from fcn_jax.ops import unpool
from fcn_jax.ops import upsample as up

DECODERS: dict[str, type] = {}  # model.decoder -> its class, in registration order


def register(name: str):
    """Class decorator: make an upsampling layer available as ``model.decoder=name``."""
    def add(cls: type) -> type:
        if name in DECODERS:
            raise ValueError(f"decoder {name!r} is already registered ({DECODERS[name]})")
        DECODERS[name] = cls
        return cls
    return add


class FixedKernel(nnx.Variable):
    """A weight that is part of the model but never trained (not an nnx.Param)."""


class TransposedConvUpsample(nnx.Module):
    """Transposed convolution, kernel 2f, stride f, no bias; bilinear or random initialisation.

    ``learnable`` False keeps the kernel fixed (the reference release's choice); True makes it
    an nnx.Param (the paper learned its 2x layers). ``random_init`` draws a He-normal kernel.
    """

    learnable = False
    random_init = False

    def __init__(self, channels: int, factor: int, *, stride: int | None = None,
                 kernels: Kernels = PLAIN_KERNELS, dtype=jnp.float32,
                 rngs: nnx.Rngs | None = None):
        if self.random_init:
            init = nnx.initializers.variance_scaling(2.0, "fan_in", "truncated_normal")
            kernel = init(rngs.params(), (2 * factor, 2 * factor, channels, channels))
        else:
            kernel = jnp.asarray(up.bilinear_kernel(factor, channels))
        self.factor = factor
        self.kernel = nnx.Param(kernel) if self.learnable else FixedKernel(kernel)
        # A fixed kernel is bilinear, one filter per class: zero off the channel diagonal.
        self.upsample = (kernels.transposed_conv if self.learnable
                         else kernels.per_class_transposed_conv)

    def uncropped(self, x: jax.Array) -> jax.Array:
        """The full transposed convolution, (n + 1) * f per axis (Caffe's Deconvolution)."""
        return self.upsample(x, self.kernel[...].astype(x.dtype), self.factor)

    def __call__(self, x: jax.Array, height: int, width: int, features=None) -> jax.Array:
        """Upsample by f and crop to ``height`` x ``width``, aligned with the input's pixels."""
        return up.crop(self.uncropped(x), up.upsample_crop_offset(self.factor), height, width)


@register("bilinear")
class FixedBilinearUpsample(TransposedConvUpsample):
    """Bilinear interpolation as a fixed transposed convolution (the reference release)."""


@register("learned_bilinear")
class LearnedBilinearUpsample(TransposedConvUpsample):
    """A transposed convolution learned from bilinear initialisation (the paper's 2x layers)."""

    learnable = True


@register("learned_random")
class LearnedRandomUpsample(TransposedConvUpsample):
    """A transposed convolution learned from a random (He-normal) initialisation."""

    learnable = True
    random_init = True


@register("nearest")
class NearestUpsample(nnx.Module):
    """Nearest-neighbour unpooling by f: every score fills its f x f block. No parameters."""

    def __init__(self, channels: int, factor: int, **unused):
        self.factor = factor

    def __call__(self, x: jax.Array, height: int, width: int, features=None) -> jax.Array:
        return up.crop(unpool.nearest_unpool(x, self.factor), 0, height, width)


def tent_kernel(channels: int) -> np.ndarray:
    """A 3x3 HWIO kernel applying the 2-D tent [1/2, 1, 1/2] to each channel separately."""
    tent = np.array([0.5, 1.0, 0.5], np.float32)
    kernel = np.zeros((3, 3, channels, channels), np.float32)
    kernel[:, :, np.arange(channels), np.arange(channels)] = np.outer(tent, tent)[:, :, None]
    return kernel


def pooling_switches(activation: jax.Array) -> tuple[jax.Array, tuple[int, int]]:
    """Where each 2x2 ceil-mode pooling window of ``activation`` peaks: [N, h, w, 1] indices.

    Score maps have one channel per class, not per feature, so one switch per window is
    shared by all classes: the position of the largest channel-mean activation. Odd sizes are
    padded with -inf (the ceil-mode pooling window hangs over the edge); indices are flat
    positions in the padded map, as ``unpool.max_unpool`` expects. Returns the indices and
    the unpadded size, which unpooling crops back to.
    """
    x = jnp.mean(activation, axis=-1, keepdims=True)
    height, width = x.shape[1:3]
    x = jnp.pad(x, ((0, 0), (0, height % 2), (0, width % 2), (0, 0)),
                constant_values=-jnp.inf)
    return unpool.max_pool_with_indices(x)[1], (height, width)


@register("bed_of_nails")
class BedOfNailsUpsample(nnx.Module):
    """log2(f) stages of 2x bed of nails (zero insertion), each followed by a learned 3x3 conv."""

    def __init__(self, channels: int, factor: int, *, stride: int,
                 kernels: Kernels = PLAIN_KERNELS, dtype=jnp.float32, rngs: nnx.Rngs):
        if factor < 2 or factor & (factor - 1):
            raise ValueError(f"unpooling decoders need a power-of-two factor, got {factor}")
        self.factor = factor
        self.top_level = int(math.log2(stride))
        self.convs = nnx.List([
            nnx.Conv(channels, channels, (3, 3), padding="SAME",
                     kernel_init=lambda *_: jnp.asarray(tent_kernel(channels)),
                     bias_init=nnx.initializers.zeros, conv_general_dilated=kernels.conv,
                     dtype=dtype, rngs=rngs)
            for _ in range(int(math.log2(factor)))])

    def unpool_2x(self, x: jax.Array, level: int, features) -> jax.Array:
        """One stage's 2x unpooling, from the stride of pool ``level`` to that of its input."""
        return unpool.bed_of_nails(x, 2)

    def __call__(self, x: jax.Array, height: int, width: int, features=None) -> jax.Array:
        for stage, conv in enumerate(self.convs):
            x = conv(self.unpool_2x(x, self.top_level - stage, features))
        return up.crop(x, 0, height, width)


@register("max_unpool")
class MaxUnpoolUpsample(BedOfNailsUpsample):
    """log2(f) stages of 2x max-unpooling at the encoder's switches, each followed by a learned
    3x3 conv (SegNet-style). The stage from stride s to s/2 places each score where the
    pooling that took stride s/2 to s found its maximum (pool5 for 32 -> 16, ..., pool1 for
    2 -> 1), from that pooling's input ``features["conv<level>"]``."""

    reads_trunk_features = True  # shift-and-stitch cannot feed it (models/fcn.py)

    def unpool_2x(self, x: jax.Array, level: int, features) -> jax.Array:
        name = f"conv{level}"
        if not features or name not in features:
            raise ValueError(f"max_unpool needs the switches of pool{level}: pass the trunk's "
                             f"features with {name!r}")
        index, (out_h, out_w) = pooling_switches(features[name])
        x = unpool.max_unpool(x, jnp.broadcast_to(index, x.shape), 2 * x.shape[1],
                              2 * x.shape[2])
        return up.crop(x, 0, out_h, out_w)


def is_transposed_conv(decoder: str) -> bool:
    """Whether ``model.decoder`` is a transposed convolution (kernel 2f, stride f)."""
    return issubclass(DECODERS.get(decoder, type), TransposedConvUpsample)


def reads_trunk_features(decoder: str) -> bool:
    """Whether ``model.decoder`` places scores at the trunk's pooling switches (VGG16's)."""
    return getattr(DECODERS.get(decoder), "reads_trunk_features", False)


def make_upsampler(decoder: str, channels: int, factor: int, *, stride: int, kernels: Kernels,
                   dtype, rngs: nnx.Rngs) -> nnx.Module:
    """The upsampling layer for scores at ``stride`` upsampled ``factor`` times, computing in
    ``dtype`` (a transposed convolution in its input's)."""
    if decoder not in DECODERS:
        raise ValueError(f"model.decoder={decoder!r}: expected one of {tuple(DECODERS)}")
    return DECODERS[decoder](channels, factor, stride=stride, kernels=kernels, dtype=dtype,
                             rngs=rngs)
