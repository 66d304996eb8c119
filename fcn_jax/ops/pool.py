"""2x2 max pooling, stride 2, ceil mode, with a gradient that needs no scatter.

XLA on CPU expands the gradient of ``lax.reduce_window`` max pooling (select-and-scatter)
into a reduce-window that tracks argmax indices plus a scatter, several times slower than the
pooling itself. Here each 2x2 window is an axis of a reshaped array; the gradient goes to the
first maximum of each window in row-major order, exactly as select-and-scatter routes it.
"""

import jax
import jax.numpy as jnp


def windows(x: jax.Array) -> jax.Array:
    """NHWC -> [B, ceil(H/2), 2, ceil(W/2), 2, C]: the 2x2 windows on axes 2 and 4.

    Odd sizes are padded with -inf at the bottom / right (Caffe's ceil mode).
    """
    batch, height, width, channels = x.shape
    pad_h, pad_w = height % 2, width % 2
    if pad_h or pad_w:
        x = jnp.pad(x, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), constant_values=-jnp.inf)
    return x.reshape(batch, (height + pad_h) // 2, 2, (width + pad_w) // 2, 2, channels)


def route_to_first_max(win: jax.Array, pooled: jax.Array, grad: jax.Array) -> jax.Array:
    """``grad`` placed at the first maximum of each window (row-major), zeros elsewhere."""
    seen = jnp.zeros(pooled.shape, bool)
    rows = []
    for dy in range(2):
        row = []
        for dx in range(2):
            is_max = win[:, :, dy, :, dx] == pooled
            row.append(jnp.where(is_max & ~seen, grad, 0.0))
            seen = seen | is_max
        rows.append(jnp.stack(row, axis=3))
    return jnp.stack(rows, axis=2)


@jax.custom_vjp
def max_pool_2x2(x: jax.Array) -> jax.Array:
    """2x2 max pooling with stride 2; output size ceil(H/2) x ceil(W/2)."""
    return jnp.max(windows(x), axis=(2, 4))


def max_pool_2x2_fwd(x):
    pooled = max_pool_2x2(x)
    return pooled, (x, pooled)


def max_pool_2x2_bwd(residuals, grad):
    x, pooled = residuals
    batch, height, width, channels = x.shape
    routed = route_to_first_max(windows(x), pooled, grad)
    return (routed.reshape(batch, -1, routed.shape[3] * 2, channels)[:, :height, :width],)


max_pool_2x2.defvjp(max_pool_2x2_fwd, max_pool_2x2_bwd)
