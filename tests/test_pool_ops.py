"""max_pool_2x2 (the CPU fast path) and reduce_window_max_pool (the plain path) equal Flax's
reduce_window max pooling (ceil mode) in values and gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from fcn_jax.ops.pool import max_pool_2x2, reduce_window_max_pool


def reduce_window_pool(x: jax.Array) -> jax.Array:
    """The straightforward formulation: reduce_window max, "SAME" padding rounds up."""
    return nnx.max_pool(x, window_shape=(2, 2), strides=(2, 2), padding="SAME")


@pytest.mark.parametrize("shape", [(2, 6, 8, 3), (2, 7, 5, 3), (1, 1, 1, 2), (1, 9, 9, 1)])
@pytest.mark.parametrize("with_ties", [False, True])
def test_values_and_gradients_equal_reduce_window(shape, with_ties):
    rng = np.random.default_rng(sum(shape))
    x = rng.normal(size=shape)
    if with_ties:  # ReLU outputs: many zeros, and repeated positive values
        x = np.maximum(np.round(x * 2), 0)
    x = jnp.asarray(x, jnp.float32)
    want = reduce_window_pool(x)
    cotangent = jnp.asarray(rng.normal(size=want.shape), jnp.float32)
    want_grad = jax.grad(lambda a: jnp.vdot(reduce_window_pool(a), cotangent))(x)
    for pool in (max_pool_2x2, reduce_window_max_pool):
        np.testing.assert_array_equal(pool(x), want)
        grad = jax.grad(lambda a, pool=pool: jnp.vdot(pool(a), cotangent))(x)
        np.testing.assert_array_equal(grad, want_grad)  # ties: all to the first maximum


def test_gradient_under_jit_and_vmap():
    x = jnp.asarray(np.random.default_rng(0).normal(size=(3, 2, 4, 4, 2)), jnp.float32)
    grad = jax.jit(jax.vmap(jax.grad(lambda a: jnp.sum(max_pool_2x2(a) ** 2))))(x)
    want = jax.vmap(jax.grad(lambda a: jnp.sum(reduce_window_pool(a) ** 2)))(x)
    np.testing.assert_allclose(grad, want, rtol=1e-6)
