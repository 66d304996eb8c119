"""Unpooling: the fixed upsampling operators FCN's learned deconvolution is compared with.

The FCN paper (section 3.3) upsamples by backwards strided convolution; earlier and parallel
work upsampled by unpooling. These are pure functions on NHWC arrays:

- nearest-neighbour unpooling: every coarse value fills its f x f block;
- bed of nails: the value goes to the top-left pixel of its block, zeros elsewhere;
- max-unpooling (SegNet): 2x2 max pooling also returns where each maximum came from, and
  unpooling puts each value back at exactly that position, zeros elsewhere.

Indices follow torch's ``MaxPool2d(return_indices=True)``: for each (example, channel), the
flat position ``row * W + col`` of the maximum in the pooled input plane (first maximum on ties).
"""

import jax
import jax.numpy as jnp


def nearest_unpool(x: jax.Array, factor: int) -> jax.Array:
    """Repeat each pixel into an f x f block: [N,H,W,C] -> [N,fH,fW,C]."""
    return jnp.repeat(jnp.repeat(x, factor, axis=1), factor, axis=2)


def bed_of_nails(x: jax.Array, factor: int) -> jax.Array:
    """Place each pixel at the top-left of its f x f block, zeros elsewhere."""
    n, h, w, c = x.shape
    out = jnp.zeros((n, h, factor, w, factor, c), x.dtype)
    out = out.at[:, :, 0, :, 0, :].set(x)
    return out.reshape(n, h * factor, w * factor, c)


def max_pool_with_indices(x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """2x2 max pooling, stride 2 (H and W even) -> (values, int32 flat input indices)."""
    n, h, w, c = x.shape
    if h % 2 or w % 2:
        raise ValueError(f"max_pool_with_indices needs even height and width, got {h}x{w}")
    windows = x.reshape(n, h // 2, 2, w // 2, 2, c).transpose(0, 1, 3, 5, 2, 4)
    windows = windows.reshape(n, h // 2, w // 2, c, 4)
    local = jnp.argmax(windows, axis=-1)
    values = jnp.max(windows, axis=-1)
    rows = 2 * jnp.arange(h // 2)[None, :, None, None] + local // 2
    cols = 2 * jnp.arange(w // 2)[None, None, :, None] + local % 2
    return values, (rows * w + cols).astype(jnp.int32)


def max_unpool(values: jax.Array, indices: jax.Array, height: int, width: int) -> jax.Array:
    """Scatter pooled ``values`` back to their ``indices`` in an [N,height,width,C] map."""
    n, h, w, c = values.shape
    flat_values = values.transpose(0, 3, 1, 2).reshape(n * c, h * w)
    flat_index = indices.transpose(0, 3, 1, 2).reshape(n * c, h * w)
    planes = jnp.zeros((n * c, height * width), values.dtype)
    planes = planes.at[jnp.arange(n * c)[:, None], flat_index].set(flat_values)
    return planes.reshape(n, c, height, width).transpose(0, 2, 3, 1)
