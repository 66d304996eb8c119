"""Unpooling ops against numpy loops (and torch's MaxPool2d / MaxUnpool2d when installed)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fcn_jax.ops import unpool


def random_map(seed=0, shape=(2, 6, 8, 3)):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def numpy_max_pool_with_indices(x):
    """2x2/2 max pooling by loops; indices are row * W + col of the first maximum."""
    n, h, w, c = x.shape
    values = np.zeros((n, h // 2, w // 2, c), x.dtype)
    indices = np.zeros((n, h // 2, w // 2, c), np.int64)
    for b in range(n):
        for i in range(h // 2):
            for j in range(w // 2):
                for k in range(c):
                    best = None
                    for di in range(2):
                        for dj in range(2):
                            r, s = 2 * i + di, 2 * j + dj
                            if best is None or x[b, r, s, k] > best:
                                best, values[b, i, j, k] = x[b, r, s, k], x[b, r, s, k]
                                indices[b, i, j, k] = r * w + s
    return values, indices


def test_nearest_unpool_fills_blocks():
    x = random_map()
    out = np.asarray(unpool.nearest_unpool(jnp.asarray(x), 3))
    for i in range(out.shape[1]):
        for j in range(out.shape[2]):
            np.testing.assert_array_equal(out[:, i, j], x[:, i // 3, j // 3])


def test_bed_of_nails_keeps_one_corner():
    x = random_map()
    out = np.asarray(unpool.bed_of_nails(jnp.asarray(x), 2))
    want = np.zeros_like(out)
    want[:, ::2, ::2] = x
    np.testing.assert_array_equal(out, want)


# A width that is not a power of two (row * W + col differs from row * W | col) and batch and
# channel counts whose difference is not -1 (a reshape to n - c would pass): two mutation
# survivors of the first shape alone.
@pytest.mark.parametrize("shape", [(2, 6, 8, 3), (3, 6, 10, 2)])
def test_max_pool_indices_and_unpool_match_loops(shape):
    x = random_map(1, shape)
    _, height, width, _ = shape
    values, indices = unpool.max_pool_with_indices(jnp.asarray(x))
    want_values, want_indices = numpy_max_pool_with_indices(x)
    np.testing.assert_array_equal(values, want_values)
    np.testing.assert_array_equal(indices, want_indices)
    out = np.asarray(unpool.max_unpool(values, indices, height, width))
    want = np.zeros_like(x)
    for b, i, j, k in np.ndindex(*want_values.shape):
        r, s = divmod(int(want_indices[b, i, j, k]), width)
        want[b, r, s, k] = want_values[b, i, j, k]
    np.testing.assert_array_equal(out, want)


def test_max_unpool_gradient_routes_to_the_maxima():
    x = jnp.asarray(random_map(2))
    grad = jax.grad(lambda v: jnp.sum(unpool.max_unpool(*unpool.max_pool_with_indices(v), 6, 8)))(x)
    values, indices = numpy_max_pool_with_indices(np.asarray(x))
    assert float(jnp.sum(grad)) == values.size  # exactly one input per window gets gradient 1


def test_odd_size_is_a_clear_error():
    with pytest.raises(ValueError, match="even height and width, got 5x8"):
        unpool.max_pool_with_indices(jnp.zeros((1, 5, 8, 1)))


def test_max_unpool_matches_torch():
    torch = pytest.importorskip("torch")
    x = random_map(3)
    values, indices = unpool.max_pool_with_indices(jnp.asarray(x))
    tx = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
    t_values, t_indices = torch.nn.functional.max_pool2d(tx, 2, 2, return_indices=True)
    np.testing.assert_array_equal(np.asarray(indices), t_indices.numpy().transpose(0, 2, 3, 1))
    t_out = torch.nn.functional.max_unpool2d(t_values, t_indices, 2, 2, output_size=(6, 8))
    np.testing.assert_array_equal(np.asarray(unpool.max_unpool(values, indices, 6, 8)),
                                  t_out.numpy().transpose(0, 2, 3, 1))


@pytest.mark.parametrize("height, width", [(5, 8), (6, 7), (9, 9)])
def test_max_pool_with_indices_refuses_odd_sizes(height, width):
    with pytest.raises(ValueError, match=rf"needs even height and width, got {height}x{width}"):
        unpool.max_pool_with_indices(jnp.zeros((1, height, width, 2)))
