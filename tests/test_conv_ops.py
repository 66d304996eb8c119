"""im2col_conv and column_group_conv equal lax.conv_general_dilated in values and gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from fcn_jax.ops.conv import COLUMN_GROUP, column_group_conv, column_selection, im2col_conv

DIMS = ("NHWC", "HWIO", "NHWC")


def lax_conv(x, kernel, strides, padding):
    return jax.lax.conv_general_dilated(x, kernel, strides, padding, dimension_numbers=DIMS)


@pytest.mark.parametrize("size,kernel_size,padding,strides", [
    (7, 7, "SAME", (1, 1)), (7, 1, "SAME", (1, 1)), (6, 4, "SAME", (1, 1)),
    (9, 3, "VALID", (1, 1)), (8, 3, ((2, 0), (1, 1)), (1, 1)), (9, 3, "SAME", (2, 2))])
def test_values_and_gradients_equal_lax(size, kernel_size, padding, strides):
    rng = np.random.default_rng(size * kernel_size)
    x = jnp.asarray(rng.normal(size=(2, size, size + 1, 5)), jnp.float32)
    kernel = jnp.asarray(rng.normal(size=(kernel_size, kernel_size, 5, 6)), jnp.float32)
    want = lax_conv(x, kernel, strides, padding)
    got = im2col_conv(x, kernel, strides, padding, dimension_numbers=DIMS)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    cotangent = jnp.asarray(rng.normal(size=want.shape), jnp.float32)
    grads, want_grads = (jax.grad(lambda a, k: jnp.vdot(fn(a, k), cotangent), (0, 1))(x, kernel)
                         for fn in (lambda a, k: im2col_conv(a, k, strides, padding,
                                                             dimension_numbers=DIMS),
                                    lambda a, k: lax_conv(a, k, strides, padding)))
    for got_grad, want_grad in zip(grads, want_grads):
        np.testing.assert_allclose(got_grad, want_grad, rtol=1e-4, atol=1e-3)


def test_drop_in_for_nnx_conv():
    x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 7, 7, 3)), jnp.float32)
    plain = nnx.Conv(3, 4, (7, 7), padding="SAME", rngs=nnx.Rngs(0))
    fast = nnx.Conv(3, 4, (7, 7), padding="SAME", conv_general_dilated=im2col_conv,
                    rngs=nnx.Rngs(0))
    np.testing.assert_allclose(fast(x), plain(x), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("shape,padding", [
    ((2, 9, 2 * COLUMN_GROUP, 3), "SAME"),          # width a multiple of the group
    ((2, 7, 4 * COLUMN_GROUP + 3, 3), "SAME"),      # a last, partial group
    ((1, 5, 6, 3), ((100, 100), (100, 100))),       # the reference release's conv1_1 padding
    ((2, 8, 11, 5), ((2, 0), (1, 1))), ((1, 6, 7, 2), "VALID")])
def test_column_group_conv_equals_lax(shape, padding):
    rng = np.random.default_rng(sum(shape))
    x = jnp.asarray(rng.normal(size=shape), jnp.float32)
    kernel = jnp.asarray(rng.normal(size=(3, 3, shape[-1], 4)), jnp.float32)
    want = lax_conv(x, kernel, (1, 1), padding)
    got = column_group_conv(x, kernel, (1, 1), padding, dimension_numbers=DIMS)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    cotangent = jnp.asarray(rng.normal(size=want.shape), jnp.float32)
    grads, want_grads = (jax.grad(lambda a, k: jnp.vdot(fn(a, k), cotangent), (0, 1))(x, kernel)
                         for fn in (lambda a, k: column_group_conv(a, k, (1, 1), padding,
                                                                   dimension_numbers=DIMS),
                                    lambda a, k: lax_conv(a, k, (1, 1), padding)))
    for got_grad, want_grad in zip(grads, want_grads):
        np.testing.assert_allclose(got_grad, want_grad, rtol=1e-5, atol=1e-5)


def test_column_selection_is_the_band_of_a_convolution():
    """Output column o of a group reads window columns o .. o + kw - 1 through taps 0 .. kw - 1."""
    selection = column_selection(group=3, kernel_width=3)
    assert selection.shape == (5, 3, 3)
    for out_col in range(3):
        for tap in range(3):
            column = np.zeros(5)
            column[out_col + tap] = 1.0
            np.testing.assert_array_equal(selection[:, out_col, tap], column)


def test_column_group_conv_falls_back_to_lax_for_strided_convolutions():
    x = jnp.asarray(np.random.default_rng(1).normal(size=(1, 9, 9, 3)), jnp.float32)
    kernel = jnp.asarray(np.random.default_rng(2).normal(size=(3, 3, 3, 4)), jnp.float32)
    np.testing.assert_array_equal(
        column_group_conv(x, kernel, (2, 2), "SAME", dimension_numbers=DIMS),
        lax_conv(x, kernel, (2, 2), "SAME"))
