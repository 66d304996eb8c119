"""2x2 max pooling, stride 2, ceil mode, with a gradient that needs no scatter.

XLA on CPU expands the gradient of ``lax.reduce_window`` max pooling (select-and-scatter)
into a reduce-window that tracks argmax indices plus a scatter, several times slower than the
pooling itself. Here the four positions of every 2x2 window are four strided slices of the
map (``window_taps``): the pooling is an elementwise maximum of them, one vectorised loop
fusion (a reduction over reshaped window axes ran 4-8x slower), and the gradient goes to the first maximum of each window in row-major order,
exactly as select-and-scatter routes it. ``reduce_window_max_pool`` is the plain form that
the other backends run.
"""

import jax
import jax.numpy as jnp
from jax import lax


def window_taps(x: jax.Array) -> list[jax.Array]:
    """The four [B, ceil(H/2), ceil(W/2), C] slices x[:, dy::2, dx::2], row-major (dy, dx).

    Odd sizes are padded with -inf at the bottom / right first (Caffe's ceil mode).
    """
    height, width = x.shape[1:3]
    pad_h, pad_w = height % 2, width % 2
    if pad_h or pad_w:
        x = jnp.pad(x, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), constant_values=-jnp.inf)
    return [x[:, dy::2, dx::2] for dy in range(2) for dx in range(2)]


def route_to_first_max(taps: list[jax.Array], pooled: jax.Array,
                       grad: jax.Array) -> jax.Array:
    """``grad`` placed at the first maximum of each window (row-major), zeros elsewhere.

    Returns the padded map, [B, 2 * ceil(H/2), 2 * ceil(W/2), C].
    """
    seen = jnp.zeros(pooled.shape, bool)
    routed = []
    for tap in taps:
        is_max = tap == pooled
        routed.append(jnp.where(is_max & ~seen, grad, 0.0))
        seen = seen | is_max
    batch, rows, cols, channels = pooled.shape
    windows = jnp.stack(routed, axis=3).reshape(batch, rows, cols, 2, 2, channels)
    return windows.transpose(0, 1, 3, 2, 4, 5).reshape(batch, 2 * rows, 2 * cols, channels)


@jax.custom_vjp
def max_pool_2x2(x: jax.Array) -> jax.Array:
    """2x2 max pooling with stride 2; output size ceil(H/2) x ceil(W/2)."""
    top_left, top_right, bottom_left, bottom_right = window_taps(x)
    return jnp.maximum(jnp.maximum(top_left, top_right), jnp.maximum(bottom_left, bottom_right))


def max_pool_2x2_fwd(x):
    pooled = max_pool_2x2(x)
    return pooled, (x, pooled)


def max_pool_2x2_bwd(residuals, grad):
    x, pooled = residuals
    height, width = x.shape[1:3]
    return (route_to_first_max(window_taps(x), pooled, grad)[:, :height, :width],)


max_pool_2x2.defvjp(max_pool_2x2_fwd, max_pool_2x2_bwd)


def reduce_window_max_pool(x: jax.Array) -> jax.Array:
    """The same pooling as ``lax.reduce_window`` (odd sizes padded with -inf at the end)."""
    height, width = x.shape[1:3]
    return lax.reduce_window(x, -jnp.inf, lax.max, (1, 2, 2, 1), (1, 2, 2, 1),
                             ((0, 0), (0, height % 2), (0, width % 2), (0, 0)))


def overlapping_max_pool(x: jax.Array, stride: int) -> jax.Array:
    """3x3 max pooling (AlexNet's and GoogLeNet's), padded with -inf so that the output has
    ceil(H / stride) x ceil(W / stride) cells, as every pool of the FCN's trunks has."""
    return lax.reduce_window(x, -jnp.inf, lax.max, (1, 3, 3, 1), (1, stride, stride, 1), "SAME")
