"""Bilinear kernels and transposed-convolution upsampling (FCN paper, section 3.3).

"Upsampling is backwards strided convolution": a transposed convolution with stride f and
kernel 2f, initialised to bilinear interpolation, one filter per class (no mixing across
classes). Cropping its output by f/2 aligns it exactly with half-pixel bilinear interpolation.

Two formulations: the sub-pixel ones (``transposed_conv``, ``per_class_transposed_conv``:
matmuls and per-channel multiply-adds, the CPU fast paths) and the plain XLA one
(``lax_transposed_conv``, as ``nnx.ConvTranspose`` computes it, for full and per-class
kernels alike: a grouped form of the per-class case ran ~40x slower on XLA:CPU).
"""

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

NHWC = ("NHWC", "HWIO", "NHWC")


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


def check_kernel_size(kernel: jax.Array, factor: int) -> None:
    """A stride-f transposed convolution here has a 2f x 2f kernel."""
    if kernel.shape[0] != kernel.shape[1] or kernel.shape[0] != 2 * factor:
        raise ValueError(f"kernel {kernel.shape[:2]} is not 2f x 2f for factor {factor}")


def phase_taps(kernel: jax.Array, factor: int) -> jax.Array:
    """Split a [2f, 2f, ...] transposed-conv kernel into its f x f output phases.

    Output pixel (q*f + r) of a stride-f, kernel-2f transposed convolution sums exactly two
    inputs per axis, x[q-1] and x[q]. Returns [2, 2, f, f, ...]: entry [a, b, ry, rx] weighs
    the zero-padded input at (q + a, p + b) for output phase (ry, rx). As in
    ``jax.lax.conv_transpose`` (which does not flip the kernel), phase r reads kernel row
    a*f + f-1-r.
    """
    check_kernel_size(kernel, factor)
    taps = kernel.reshape(2, factor, 2, factor, *kernel.shape[2:])[:, ::-1, :, ::-1]
    return jnp.swapaxes(taps, 1, 2)


def shifted_windows(x: jax.Array) -> dict:
    """The zero-padded map's four (n+1) x (m+1) windows, keyed by their offset (a, b)."""
    height, width = x.shape[1:3]
    padded = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    return {(a, b): padded[:, a:a + height + 1, b:b + width + 1]
            for a in range(2) for b in range(2)}


def transposed_conv(x: jax.Array, kernel: jax.Array, factor: int) -> jax.Array:
    """Transposed convolution of NHWC ``x`` with an HWIO ``kernel`` of size 2f and stride f.

    The output has size (n + 1) * f per spatial axis ("VALID" transposed convolution); the
    values are those of ``jax.lax.conv_transpose``. Computed by sub-pixel decomposition: one
    matrix product of the four shifted inputs with the kernel's f x f phases (4C x f*f*O
    weights), then depth-to-space, so no multiply touches the zeros of a dilated input.
    """
    batch, height, width, channels = x.shape
    out_channels = kernel.shape[-1]
    taps = phase_taps(kernel, factor)  # [2, 2, f, f, I, O]
    weights = taps.transpose(0, 1, 4, 2, 3, 5).reshape(4 * channels, -1)
    shifted = jnp.concatenate(list(shifted_windows(x).values()), axis=-1)  # (a, b) major
    y = jnp.dot(shifted, weights).reshape(batch, height + 1, width + 1, factor, factor,
                                           out_channels)
    return y.transpose(0, 1, 3, 2, 4, 5).reshape(batch, (height + 1) * factor,
                                                 (width + 1) * factor, out_channels)


def per_class_transposed_conv(x: jax.Array, kernel: jax.Array, factor: int) -> jax.Array:
    """``transposed_conv`` for a kernel that is zero off its channel diagonal (in == out).

    The FCN's fixed upsampling layers hold one bilinear filter per class (paper, section 3.3;
    see ``bilinear_kernel``); only ``kernel[:, :, c, c]`` is read. Each output phase is four
    per-channel multiply-adds of the shifted input, with no C x C products.
    """
    return per_class_phases(x, per_class_phase_taps(kernel, factor))


def per_class_phase_taps(kernel: jax.Array, factor: int) -> jax.Array:
    """``phase_taps`` of the channel diagonal of a [2f, 2f, C, C] kernel: [2, 2, f, f, C].

    One gather at precomputed positions: as a chain of diagonal, reverse and transposes, XLA
    fused the whole chain into every consumer and re-ran it per output element.
    """
    check_kernel_size(kernel, factor)
    a, b, ry, rx, c = np.indices((2, 2, factor, factor, kernel.shape[2]))
    rows, cols = a * factor + factor - 1 - ry, b * factor + factor - 1 - rx
    flat = np.ravel_multi_index((rows, cols, c, c), kernel.shape)
    return kernel.reshape(-1)[flat]


@jax.custom_vjp
def per_class_phases(x: jax.Array, taps: jax.Array) -> jax.Array:
    """Per-channel sub-pixel transposed convolution with phase taps [2, 2, f, f, C]."""
    batch, height, width, channels = x.shape
    factor = taps.shape[2]
    y = sum(window[:, :, None, :, None, :] * taps[a, b, :, None]
            for (a, b), window in shifted_windows(x).items())
    return y.reshape(batch, (height + 1) * factor, (width + 1) * factor, channels)


def per_class_phases_fwd(x, taps):
    return per_class_phases(x, taps), (x, taps)


def per_class_phases_bwd(residuals, grad):
    """Reductions over the phases; autodiff would store each broadcast tap array instead."""
    x, taps = residuals
    batch, height, width, channels = x.shape
    factor = taps.shape[2]
    grad = grad.reshape(batch, height + 1, factor, width + 1, factor, channels)
    offsets = [(a, b) for a in range(2) for b in range(2)]
    # One variadic reduction gives all four offsets' sums from a single read of ``grad`` (and
    # a single evaluation of whatever XLA fuses into it, e.g. the loss gradient).
    per_offset = jax.lax.reduce(
        tuple(grad * taps[a, b][:, None, :, :] for a, b in offsets), (jnp.zeros((), grad.dtype),) * 4,
        lambda xs, ys: tuple(u + v for u, v in zip(xs, ys)), (2, 4))  # 4 x [B, n+1, m+1, C]
    dx = sum(total[:, 1 - a:1 - a + height, 1 - b:1 - b + width]
             for (a, b), total in zip(offsets, per_offset))
    windows = shifted_windows(x)
    dtaps = jnp.stack([jnp.stack([(windows[a, b][:, :, None, :, None] * grad).sum(
        axis=(0, 1, 3)) for b in range(2)]) for a in range(2)])
    return dx, dtaps


per_class_phases.defvjp(per_class_phases_fwd, per_class_phases_bwd)


def lax_transposed_conv(x: jax.Array, kernel: jax.Array, factor: int) -> jax.Array:
    """``transposed_conv`` as XLA's own transposed convolution ("VALID", no kernel flip)."""
    check_kernel_size(kernel, factor)
    return lax.conv_transpose(x, kernel, (factor, factor), "VALID", dimension_numbers=NHWC)


def crop(x: jax.Array, offset: int, height: int, width: int) -> jax.Array:
    """Crop an NHWC map to ``height`` x ``width`` starting at ``offset`` on both axes."""
    return x[:, offset:offset + height, offset:offset + width, :]


def upsample_crop_offset(factor: int) -> int:
    """Offset aligning a stride-f transposed conv output with its input's pixel centres."""
    return factor // 2
