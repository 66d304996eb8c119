"""Shift-and-stitch (FCN paper, section 3.2): a finer output grid from an unchanged coarse net.

A net whose output has stride s sees its input once every s pixels. Run it on f x f copies of
the input, shifted by multiples of s / f pixels, and interlace the f^2 outputs: each cell of
each shifted copy is a cell of a grid of stride s / f, at f^2 times the cost of one pass. The
shifts are centred on zero, so a stitched cell sits where a cell of a native stride-(s / f)
net would (which needs s / f even). The paper implemented the trick and found skip fusion
the better trade of cost for accuracy.
"""

import jax
import jax.numpy as jnp


def allowed_factors(stride: int) -> list[int]:
    """The factors f that refine stride ``stride`` to an even stride s / f (1: no stitching)."""
    return [f for f in range(1, stride) if stride % f == 0 and (stride // f) % 2 == 0]


def check_factor(factor: int, stride: int) -> None:
    """Refuse a factor that does not divide ``stride`` into an even stride."""
    if factor not in allowed_factors(stride):
        raise ValueError(f"model.shift_stitch={factor!r}: expected a factor f that divides the "
                         f"output stride {stride} into an even stride, one of "
                         f"{allowed_factors(stride)}")


def shifts(factor: int, stride: int) -> list[int]:
    """The f pixel shifts along one axis: multiples of s / f, centred on zero."""
    check_factor(factor, stride)
    step = stride // factor
    return [(2 * a - (factor - 1)) * step // 2 for a in range(factor)]


def shifted(x: jax.Array, dy: int, dx: int, fill: float = 0.0) -> jax.Array:
    """``out[n, i, j] = x[n, i + dy, j + dx]``, ``fill`` where that falls outside ``x``."""
    pad = max(abs(dy), abs(dx))
    height, width = x.shape[1:3]
    padded = jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), constant_values=fill)
    return padded[:, pad + dy:pad + dy + height, pad + dx:pad + dx + width]


def shift_and_stitch(coarse_fn, x: jax.Array, factor: int, stride: int,
                     fill: float = 0.0) -> jax.Array:
    """``coarse_fn`` ([M, H, W, C] -> [M, h, w, K] at stride ``stride``) at stride s / f.

    The f^2 shifted copies go through ``coarse_fn`` as one batch, copy-major ([f^2 N, ...]);
    the result is [N, f h, f w, K] with ``out[:, f i + a, f j + b] = coarse_fn(copy (a, b))
    [:, i, j]``, copy (a, b) being ``x`` shifted by ``shifts(factor, stride)[a]`` rows and
    ``[b]`` columns.
    """
    offsets = shifts(factor, stride)
    copies = jnp.concatenate([shifted(x, dy, dx, fill) for dy in offsets for dx in offsets])
    scores = coarse_fn(copies)
    n, (h, w, k) = x.shape[0], scores.shape[1:]
    scores = scores.reshape(factor, factor, n, h, w, k).transpose(2, 3, 0, 4, 1, 5)
    return scores.reshape(n, h * factor, w * factor, k)
