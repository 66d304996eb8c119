"""Convolution as one matrix product over gathered patches (im2col), for nnx.Conv.

On XLA:CPU a stride-1 convolution whose kernel is large relative to its feature map (the
convolutionalized fc6, 7x7 over a 7x7 map; fc7, 1x1) runs several times faster forwards and
backwards as a matmul of the [B, H, W, k*k*C] patches with the reshaped [k*k*C, O] kernel;
both gradients are then matmuls too. Drop-in for ``lax.conv_general_dilated`` (pass it as
``nnx.Conv(..., conv_general_dilated=im2col_conv)``); anything but an NHWC/HWIO stride-1,
undilated, ungrouped convolution goes to lax unchanged.
"""

import jax
import jax.numpy as jnp
from jax import lax


def same_padding(size: int) -> tuple[int, int]:
    """lax's "SAME" padding for a stride-1 kernel of ``size``: the extra pixel goes after."""
    return (size - 1) // 2, size // 2


def patches(x: jax.Array, kernel_shape: tuple[int, int], padding) -> jax.Array:
    """[B, H', W', kh*kw*C]: each output pixel's receptive field, taps in HWI order."""
    kh, kw = kernel_shape
    if padding == "SAME":
        padding = (same_padding(kh), same_padding(kw))
    elif padding == "VALID":
        padding = ((0, 0), (0, 0))
    (top, bottom), (left, right) = padding
    x = jnp.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
    out_h, out_w = x.shape[1] - kh + 1, x.shape[2] - kw + 1
    if kh == kw == 1:
        return x
    return jnp.concatenate([x[:, i:i + out_h, j:j + out_w] for i in range(kh)
                            for j in range(kw)], axis=-1)


def im2col_conv(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
                dimension_numbers=None, feature_group_count=1, precision=None, **kwargs):
    """``lax.conv_general_dilated`` computed as patches @ kernel where that applies."""
    plain = (tuple(window_strides) == (1, 1) and feature_group_count == 1
             and all(d in (None, 1) or tuple(d) == (1, 1) for d in (lhs_dilation, rhs_dilation))
             and lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
             == lax.conv_dimension_numbers(lhs.shape, rhs.shape, ("NHWC", "HWIO", "NHWC")))
    if not plain:
        return lax.conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation,
                                        rhs_dilation, dimension_numbers, feature_group_count,
                                        precision=precision, **kwargs)
    cols = patches(lhs, rhs.shape[:2], padding)
    return jnp.dot(cols, rhs.reshape(-1, rhs.shape[-1]), precision=precision,
                   preferred_element_type=kwargs.get("preferred_element_type"))
