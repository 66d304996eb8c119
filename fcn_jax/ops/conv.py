"""Convolutions as matrix products over gathered patches, drop-ins for nnx.Conv.

Both are passed as ``nnx.Conv(..., conv_general_dilated=...)``; anything but an NHWC/HWIO
stride-1, undilated, ungrouped convolution goes to ``lax.conv_general_dilated`` unchanged.

- ``im2col_conv``: a stride-1 convolution whose kernel is large relative to its feature map
  (the convolutionalized fc6, 7x7 over a 7x7 map; fc7, 1x1) runs several times faster on
  XLA:CPU forwards and backwards as a matmul of the [B, H, W, k*k*C] patches with the
  reshaped [k*k*C, O] kernel; both gradients are then matmuls too.
- ``column_group_conv``: conv1_1 (3 input channels, 224x224) has too few channels for XLA's
  convolution kernels (about 40 GFLOP/s). Grouping g output columns per row turns it into one
  matmul with g times wider rows and outputs: each group reads a (g + kw - 1)-column window
  of the input, so the patches are (kh * (g + kw - 1) * C) wide and the kernel becomes a
  banded [kh * (g + kw - 1) * C, g * O] matrix. That does (g + kw - 1) / kw times the
  multiplies (2x for g = 4, 3x3) but runs as a parallel matmul, and the [B, H, W/g, g * O]
  result is the NHWC output already. Its gradients are those of lax's convolution. The
  patches take 18x the memory of a 3-channel input.

Both are CPU fast paths: ``backends.cpu`` picks them by shape, on the CPU backend only.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

NHWC = ("NHWC", "HWIO", "NHWC")


def same_padding(size: int) -> tuple[int, int]:
    """lax's "SAME" padding for a stride-1 kernel of ``size``: the extra pixel goes after."""
    return (size - 1) // 2, size // 2


def explicit_padding(padding, kernel_shape: tuple[int, int]) -> tuple:
    """lax's "SAME" / "VALID" / ((top, bottom), (left, right)) as the explicit pairs."""
    if padding == "SAME":
        return tuple(same_padding(k) for k in kernel_shape)
    if padding == "VALID":
        return ((0, 0), (0, 0))
    return tuple(tuple(p) for p in padding)


def patches(x: jax.Array, kernel_shape: tuple[int, int], padding) -> jax.Array:
    """[B, H', W', kh*kw*C]: each output pixel's receptive field, taps in HWI order."""
    kh, kw = kernel_shape
    (top, bottom), (left, right) = explicit_padding(padding, kernel_shape)
    x = jnp.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
    out_h, out_w = x.shape[1] - kh + 1, x.shape[2] - kw + 1
    if kh == kw == 1:
        return x
    return jnp.concatenate([x[:, i:i + out_h, j:j + out_w] for i in range(kh)
                            for j in range(kw)], axis=-1)


def is_plain(lhs, rhs, window_strides, lhs_dilation, rhs_dilation, dimension_numbers,
             feature_group_count) -> bool:
    """Whether a convolution is NHWC/HWIO, stride 1, undilated and ungrouped."""
    return (tuple(window_strides) == (1, 1) and feature_group_count == 1
            and all(d in (None, 1) or tuple(d) == (1, 1) for d in (lhs_dilation, rhs_dilation))
            and lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
            == lax.conv_dimension_numbers(lhs.shape, rhs.shape, NHWC))


def lax_drop_in(plain_conv):
    """A drop-in for ``lax.conv_general_dilated`` that runs ``plain_conv(lhs, rhs, padding,
    precision, preferred_element_type)`` on NHWC/HWIO stride-1, undilated, ungrouped
    convolutions and lax's convolution on anything else."""
    def conv(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
             dimension_numbers=None, feature_group_count=1, precision=None, **kwargs):
        if not is_plain(lhs, rhs, window_strides, lhs_dilation, rhs_dilation,
                        dimension_numbers, feature_group_count):
            return lax.conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation,
                                            rhs_dilation, dimension_numbers,
                                            feature_group_count, precision=precision, **kwargs)
        return plain_conv(lhs, rhs, padding, precision, kwargs.get("preferred_element_type"))
    return conv


def im2col_matmul(lhs, rhs, padding, precision, preferred_element_type):
    """Convolution as patches @ kernel."""
    cols = patches(lhs, rhs.shape[:2], padding)
    return jnp.dot(cols, rhs.reshape(-1, rhs.shape[-1]), precision=precision,
                   preferred_element_type=preferred_element_type)


im2col_conv = lax_drop_in(im2col_matmul)


COLUMN_GROUP = 4  # output columns per matmul row in column_group_conv (measured best for conv1_1)


def column_selection(group: int, kernel_width: int) -> np.ndarray:
    """[g + kw - 1, g, kw] of 0/1: window column k feeds output column o through tap k - o."""
    selection = np.zeros((group + kernel_width - 1, group, kernel_width), np.float32)
    for out_col in range(group):
        selection[out_col + np.arange(kernel_width), out_col, np.arange(kernel_width)] = 1.0
    return selection


def column_group_matmul(x: jax.Array, kernel: jax.Array, padding: tuple,
                        group: int) -> jax.Array:
    """Stride-1 NHWC/HWIO convolution with explicit padding, as one banded matmul."""
    kh, kw, channels, out_channels = kernel.shape
    (top, bottom), (left, right) = padding
    batch, height, width, _ = x.shape
    out_h, out_w = height + top + bottom - kh + 1, width + left + right - kw + 1
    groups = -(-out_w // group)  # the last group may run past out_w: cropped below
    x = jnp.pad(x, ((0, 0), (top, bottom), (left, right + groups * group - out_w), (0, 0)))
    span = group + kw - 1
    windows = jnp.concatenate([x[:, :, k:k + (groups - 1) * group + 1:group]
                               for k in range(span)], axis=-1)  # [B, Hp, groups, span * C]
    cols = jnp.concatenate([windows[:, i:i + out_h] for i in range(kh)], axis=-1)
    banded = jnp.einsum("kox,ixcp->ikcop", column_selection(group, kw).astype(kernel.dtype),
                        kernel)
    y = jnp.dot(cols, banded.reshape(kh * span * channels, group * out_channels))
    return y.reshape(batch, out_h, groups * group, out_channels)[:, :, :out_w]


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def column_group_nhwc(padding: tuple, x: jax.Array, kernel: jax.Array) -> jax.Array:
    return column_group_matmul(x, kernel, padding, COLUMN_GROUP)


def column_group_nhwc_fwd(padding, x, kernel):
    return column_group_nhwc(padding, x, kernel), (x, kernel)


def column_group_nhwc_bwd(padding, residuals, grad):
    """lax's convolution gradients: the banded matmul's would be slower for the kernel."""
    _, vjp = jax.vjp(lambda a, k: lax.conv_general_dilated(a, k, (1, 1), padding,
                                                           dimension_numbers=NHWC), *residuals)
    return vjp(grad)


column_group_nhwc.defvjp(column_group_nhwc_fwd, column_group_nhwc_bwd)


def column_group_plain(lhs, rhs, padding, precision, preferred_element_type):
    """Convolution as a column-grouped banded matmul (float32; lax's gradients)."""
    return column_group_nhwc(explicit_padding(padding, rhs.shape[:2]), lhs, rhs)


column_group_conv = lax_drop_in(column_group_plain)
