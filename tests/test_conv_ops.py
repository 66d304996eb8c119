"""im2col_conv equals lax.conv_general_dilated in values and gradients (input and kernel)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from fcn_jax.ops.conv import im2col_conv

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
