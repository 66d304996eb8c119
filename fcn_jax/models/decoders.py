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
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from fcn_jax.backends.kernels import PLAIN_KERNELS, Kernels
from fcn_jax.ops import unpool
from fcn_jax.ops import upsample as up

DECODERS = ("bilinear", "learned_bilinear", "learned_random", "nearest", "bed_of_nails",
            "max_unpool")
# The decoders that are transposed convolutions (kernel 2f, stride f): the paper's upsampling.
TRANSPOSED_CONV_DECODERS = DECODERS[:3]


class FixedKernel(nnx.Variable):
    """A weight that is part of the model but never trained (not an nnx.Param)."""


class TransposedConvUpsample(nnx.Module):
    """Transposed convolution, kernel 2f, stride f, no bias; bilinear or random initialisation.

    ``learnable=False`` keeps the kernel fixed (the reference release's choice); True makes it
    an nnx.Param (the paper learned its 2x layers). ``random_init`` draws a He-normal kernel.
    """

    def __init__(self, channels: int, factor: int, *, learnable: bool, random_init: bool = False,
                 kernels: Kernels = PLAIN_KERNELS, rngs: nnx.Rngs | None = None):
        if random_init:
            init = nnx.initializers.variance_scaling(2.0, "fan_in", "truncated_normal")
            kernel = init(rngs.params(), (2 * factor, 2 * factor, channels, channels))
        else:
            kernel = jnp.asarray(up.bilinear_kernel(factor, channels))
        self.factor = factor
        self.kernel = nnx.Param(kernel) if learnable else FixedKernel(kernel)
        # A fixed kernel is bilinear, one filter per class: zero off the channel diagonal.
        self.upsample = (kernels.transposed_conv if learnable
                         else kernels.per_class_transposed_conv)

    def uncropped(self, x: jax.Array) -> jax.Array:
        """The full transposed convolution, (n + 1) * f per axis (Caffe's Deconvolution)."""
        return self.upsample(x, self.kernel[...], self.factor)

    def __call__(self, x: jax.Array, height: int, width: int, switches=None) -> jax.Array:
        """Upsample by f and crop to ``height`` x ``width``, aligned with the input's pixels."""
        return up.crop(self.uncropped(x), up.upsample_crop_offset(self.factor), height, width)


class NearestUpsample(nnx.Module):
    """Nearest-neighbour unpooling by f: every score fills its f x f block. No parameters."""

    def __init__(self, factor: int):
        self.factor = factor

    def __call__(self, x: jax.Array, height: int, width: int, switches=None) -> jax.Array:
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


class SparseUnpoolUpsample(nnx.Module):
    """log2(f) stages of 2x bed of nails or max-unpooling, each followed by a learned 3x3 conv.

    A max-unpooling stage from stride s to s/2 uses the switches of the pooling layer that
    took stride s/2 to s (pool5 for 32 -> 16, ..., pool1 for 2 -> 1), passed in ``switches``
    as a dict {level k: pooling_switches(input of pool k)}.
    """

    def __init__(self, channels: int, factor: int, *, stride: int, use_switches: bool,
                 kernels: Kernels = PLAIN_KERNELS, rngs: nnx.Rngs):
        if factor < 2 or factor & (factor - 1):
            raise ValueError(f"unpooling decoders need a power-of-two factor, got {factor}")
        self.factor = factor
        self.top_level = int(math.log2(stride))
        self.use_switches = use_switches
        self.convs = nnx.List([
            nnx.Conv(channels, channels, (3, 3), padding="SAME",
                     kernel_init=lambda *_: jnp.asarray(tent_kernel(channels)),
                     bias_init=nnx.initializers.zeros, conv_general_dilated=kernels.conv,
                     rngs=rngs)
            for _ in range(int(math.log2(factor)))])

    def __call__(self, x: jax.Array, height: int, width: int, switches=None) -> jax.Array:
        for stage, conv in enumerate(self.convs):
            level = self.top_level - stage
            if self.use_switches:
                if switches is None or level not in switches:
                    raise ValueError(f"max_unpool needs the switches of pool{level}")
                index, (out_h, out_w) = switches[level]
                x = unpool.max_unpool(x, jnp.broadcast_to(index, x.shape),
                                      2 * x.shape[1], 2 * x.shape[2])
                x = up.crop(x, 0, out_h, out_w)
            else:
                x = unpool.bed_of_nails(x, 2)
            x = conv(x)
        return up.crop(x, 0, height, width)


def make_upsampler(decoder: str, channels: int, factor: int, *, stride: int, kernels: Kernels,
                   rngs: nnx.Rngs) -> nnx.Module:
    """The upsampling layer for scores at ``stride`` upsampled ``factor`` times."""
    if decoder in TRANSPOSED_CONV_DECODERS:
        return TransposedConvUpsample(channels, factor, learnable=decoder != "bilinear",
                                      random_init=decoder == "learned_random", kernels=kernels,
                                      rngs=rngs)
    if decoder == "nearest":
        return NearestUpsample(factor)
    if decoder in ("bed_of_nails", "max_unpool"):
        return SparseUnpoolUpsample(channels, factor, stride=stride,
                                    use_switches=decoder == "max_unpool", kernels=kernels,
                                    rngs=rngs)
    raise ValueError(f"model.decoder={decoder!r}: expected one of {DECODERS}")
