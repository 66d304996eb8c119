"""The sub-pixel transposed convolutions equal lax.conv_transpose and a numpy scatter, in values
and in gradients with respect to the input and the kernel."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fcn_jax.ops import upsample as up


def numpy_transposed_conv(x: np.ndarray, kernel: np.ndarray, factor: int) -> np.ndarray:
    """Scatter form: input pixel (i, j) adds its kernel-weighted copy at (i*f, j*f).

    ``lax.conv_transpose`` does not flip the kernel, so the copy is of kernel[::-1, ::-1].
    """
    batch, height, width, _ = x.shape
    size = 2 * factor
    y = np.zeros((batch, (height + 1) * factor, (width + 1) * factor, kernel.shape[-1]))
    flipped = kernel[::-1, ::-1].astype(np.float64)
    for i in range(height):
        for j in range(width):
            y[:, i * factor:i * factor + size, j * factor:j * factor + size] += np.einsum(
                "bc,hwco->bhwo", x[:, i, j].astype(np.float64), flipped)
    return y


@pytest.mark.parametrize("factor", [1, 2, 8])
def test_the_plain_form_is_the_scatter_for_full_and_per_class_kernels(factor):
    """lax's transposed convolution, the reference the sub-pixel forms are compared with and
    the GPU/TPU path (backends.kernels PLAIN_KERNELS), against the definition."""
    x, full, _ = inputs(factor, 3, 3, diagonal=False)
    for kernel in (full, full * jnp.eye(3)):
        np.testing.assert_allclose(up.lax_transposed_conv(x, kernel, factor),
                                   numpy_transposed_conv(np.asarray(x), np.asarray(kernel),
                                                         factor), rtol=1e-5, atol=1e-4)



def inputs(factor: int, in_ch: int, out_ch: int, *, diagonal: bool, size=(5, 7)):
    """x [2, height, width, in_ch], a kernel and an output cotangent. Odd sizes tell a window
    bound ``1 - b + width`` from ``1 - b ^ width`` (equal for even widths), even ones tell
    ``b + width + 1`` from ``b | width + 1`` (equal for odd widths)."""
    height, width = size
    rng = np.random.default_rng(factor * 10 + in_ch + height)
    x = rng.normal(size=(2, height, width, in_ch)).astype(np.float32)
    kernel = rng.normal(size=(2 * factor, 2 * factor, in_ch, out_ch)).astype(np.float32)
    if diagonal:
        kernel *= np.eye(in_ch, dtype=np.float32)
    cotangent = rng.normal(size=(2, (height + 1) * factor, (width + 1) * factor,
                                 out_ch)).astype(np.float32)
    return jnp.asarray(x), jnp.asarray(kernel), jnp.asarray(cotangent)


def grads(fn, x, kernel, cotangent, factor):
    """d<fn(x, kernel), cotangent> / d(x, kernel)."""
    return jax.grad(lambda a, k: jnp.vdot(fn(a, k, factor), cotangent), (0, 1))(x, kernel)


@pytest.mark.parametrize("factor", [1, 2, 3, 8])
@pytest.mark.parametrize("in_ch,out_ch", [(3, 3), (2, 5)])
def test_transposed_conv_values_and_grads_with_full_kernels(factor, in_ch, out_ch):
    x, kernel, cotangent = inputs(factor, in_ch, out_ch, diagonal=False)
    got = up.transposed_conv(x, kernel, factor)
    np.testing.assert_allclose(got, numpy_transposed_conv(np.asarray(x), np.asarray(kernel),
                                                          factor), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(got, up.lax_transposed_conv(x, kernel, factor), rtol=1e-5,
                               atol=1e-4)
    for ours, theirs in zip(grads(up.transposed_conv, x, kernel, cotangent, factor),
                            grads(up.lax_transposed_conv, x, kernel, cotangent, factor)):
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("size", [(5, 7), (6, 4)])
@pytest.mark.parametrize("factor", [1, 2, 3, 8])
def test_per_class_transposed_conv_values_and_grads_with_diagonal_kernels(factor, size):
    x, kernel, cotangent = inputs(factor, 3, 3, diagonal=True, size=size)
    got = up.per_class_transposed_conv(x, kernel, factor)
    np.testing.assert_allclose(got, numpy_transposed_conv(np.asarray(x), np.asarray(kernel),
                                                          factor), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(got, up.lax_transposed_conv(x, kernel, factor), rtol=1e-5,
                               atol=1e-4)
    (dx, dk), (want_dx, want_dk) = (grads(fn, x, kernel, cotangent, factor) for fn in (
        up.per_class_transposed_conv, up.lax_transposed_conv))
    np.testing.assert_allclose(dx, want_dx, rtol=1e-4, atol=1e-3)
    diagonal = np.eye(3, dtype=bool)
    np.testing.assert_allclose(np.asarray(dk)[:, :, diagonal],
                               np.asarray(want_dk)[:, :, diagonal], rtol=1e-4, atol=1e-3)
    assert not np.asarray(dk)[:, :, ~diagonal].any()  # only the per-class filters are read


def test_bilinear_kernels_upsample_alike_by_both_formulations():
    x, _, _ = inputs(4, 3, 3, diagonal=True)
    kernel = jnp.asarray(up.bilinear_kernel(4, 3))
    np.testing.assert_allclose(up.per_class_transposed_conv(x, kernel, 4),
                               up.transposed_conv(x, kernel, 4), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shape", [(3, 3), (6, 6), (4, 6), (6, 4), (4, 2)])
def test_kernel_size_must_be_twice_the_factor(shape):
    """Square, and neither smaller nor larger than 2f (here 4); the error names the size."""
    for upsample in (up.transposed_conv, up.per_class_transposed_conv):
        with pytest.raises(ValueError, match=re.escape(f"kernel {shape} is not 2f x 2f for "
                                                       "factor 2")):
            upsample(jnp.zeros((1, 2, 2, 1)), jnp.zeros((*shape, 1, 1)), 2)
    up.check_kernel_size(jnp.zeros((4, 4, 1, 1)), 2)
    factor = 130  # sizes compared by value: ints past 256 are distinct objects in CPython
    up.check_kernel_size(jnp.zeros((2 * factor, 2 * factor, 1, 1)), factor)


def test_crop_is_the_slice_at_the_offset():
    """Offsets and sizes with common bits (3 and 5, 3 and 6): ``offset + n`` is not
    ``offset | n`` there."""
    x = jnp.arange(2 * 12 * 13 * 3, dtype=jnp.float32).reshape(2, 12, 13, 3)
    np.testing.assert_array_equal(up.crop(x, 3, 6, 5), np.asarray(x)[:, 3:9, 3:8])


def test_per_class_taps_are_the_phase_taps_of_the_diagonal():
    kernel = jnp.asarray(np.random.default_rng(0).normal(size=(8, 8, 5, 5)), jnp.float32)
    np.testing.assert_array_equal(up.per_class_phase_taps(kernel, 4),
                                  up.phase_taps(jnp.diagonal(kernel, axis1=2, axis2=3), 4))
