"""Bilinear kernels and transposed-convolution upsampling (FCN paper, section 3.3).

"Upsampling is backwards strided convolution": a transposed convolution with stride f and
kernel 2f, initialised to bilinear interpolation, one filter per class (no mixing across
classes). Cropping its output by f/2 aligns it exactly with half-pixel bilinear interpolation.
"""

import jax
import jax.numpy as jnp
import numpy as np


def bilinear_kernel_1d(factor: int) -> np.ndarray:
    """The 1-D bilinear filter of length 2*factor used by the reference release."""
    size = 2 * factor
    center = factor - 0.5
    taps = np.arange(size, dtype=np.float64)
    return (1.0 - np.abs(taps - center) / factor).astype(np.float32)


def bilinear_kernel(factor: int, channels: int) -> np.ndarray:
    """An HWIO ConvTranspose kernel that upsamples each channel bilinearly by ``factor``.

    Shape [2f, 2f, channels, channels]; the filter sits on the diagonal (in == out channel).
    """
    k1 = bilinear_kernel_1d(factor)
    k2 = np.outer(k1, k1)
    kernel = np.zeros((2 * factor, 2 * factor, channels, channels), np.float32)
    kernel[:, :, np.arange(channels), np.arange(channels)] = k2[:, :, None]
    return kernel


def transposed_conv(x: jax.Array, kernel: jax.Array, factor: int) -> jax.Array:
    """Transposed convolution of NHWC ``x`` with an HWIO ``kernel`` of size 2f and stride f.

    The output has size (n + 1) * f per spatial axis ("VALID" transposed convolution).
    """
    return jax.lax.conv_transpose(
        x, kernel, strides=(factor, factor), padding="VALID",
        dimension_numbers=("NHWC", "HWIO", "NHWC"))


def crop(x: jax.Array, offset: int, height: int, width: int) -> jax.Array:
    """Crop an NHWC map to ``height`` x ``width`` starting at ``offset`` on both axes."""
    return x[:, offset:offset + height, offset:offset + width, :]


def upsample_crop_offset(factor: int) -> int:
    """Offset aligning a stride-f transposed conv output with its input's pixel centres."""
    return factor // 2
