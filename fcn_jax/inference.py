"""Inference modes: whole image, tiled sliding window, flip and multi-scale averaging.

Evaluation uses them through ``InferenceOptions`` (config ``eval.tile_size``,
``eval.tile_stride``, ``eval.flip``, ``eval.scales``); the default is the whole image.

FCNs take whole images (paper, section 3.1); tiled prediction exists for images too large for
memory, and is the "sliding window" the paper's dense evaluation replaces. All functions take
``logits_fn(images) -> logits`` ([B,H,W,3] -> [B,H,W,C]) so they work with any model.
"""

import dataclasses
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

LogitsFn = Callable[[jax.Array], jax.Array]


def tile_origins(size: int, tile: int, stride: int) -> list[int]:
    """Start offsets of tiles of length ``tile`` every ``stride`` pixels covering ``size``."""
    if tile <= 0 or stride <= 0 or stride > tile:
        raise ValueError(f"tiling needs 0 < stride <= tile, got tile={tile}, stride={stride}")
    if size <= tile:
        return [0]
    starts = list(range(0, size - tile + 1, stride))
    if starts[-1] != size - tile:
        starts.append(size - tile)
    return starts


def tiled_logits(logits_fn: LogitsFn, images: jax.Array, *, tile: int, stride: int,
                 pad_value: Sequence[float] = (0, 0, 0), max_tiles: int = 64) -> jax.Array:
    """Average the logits of overlapping ``tile`` x ``tile`` crops, batched ``max_tiles`` at a time.

    Images smaller than a tile are padded with ``pad_value`` and the result cropped back.
    """
    batch, height, width, _ = images.shape
    pad_h, pad_w = max(0, tile - height), max(0, tile - width)
    if pad_h or pad_w:
        padded = jnp.broadcast_to(jnp.asarray(pad_value, images.dtype),
                                  (batch, height + pad_h, width + pad_w, 3))
        images = padded.at[:, :height, :width].set(images)
    rows = tile_origins(images.shape[1], tile, stride)
    cols = tile_origins(images.shape[2], tile, stride)
    origins = [(r, c) for r in rows for c in cols]
    crops = jnp.stack([images[:, r:r + tile, c:c + tile] for r, c in origins], axis=1)
    crops = crops.reshape(-1, tile, tile, 3)  # [B * T, tile, tile, 3]
    logits = jnp.concatenate([logits_fn(crops[i:i + max_tiles])
                              for i in range(0, crops.shape[0], max_tiles)])
    logits = logits.reshape(batch, len(origins), tile, tile, -1)
    total = jnp.zeros(images.shape[:3] + (logits.shape[-1],), logits.dtype)
    count = np.zeros(images.shape[1:3], np.float32)
    for t, (r, c) in enumerate(origins):
        total = total.at[:, r:r + tile, c:c + tile].add(logits[:, t])
        count[r:r + tile, c:c + tile] += 1
    return (total / count[None, :, :, None])[:, :height, :width]


def flip_logits(logits_fn: LogitsFn, images: jax.Array) -> jax.Array:
    """Average the logits of the images and of their mirror images (mirrored back)."""
    mirrored = logits_fn(images[:, :, ::-1])[:, :, ::-1]
    return 0.5 * (logits_fn(images) + mirrored)


def multiscale_logits(logits_fn: LogitsFn, images: jax.Array,
                      scales: Sequence[float]) -> jax.Array:
    """Average logits over rescaled copies (bilinear), each resized back to the input size."""
    batch, height, width, _ = images.shape
    total = None
    for scale in scales:
        size = (max(1, round(height * scale)), max(1, round(width * scale)))
        scaled = jax.image.resize(images.astype(jnp.float32), (batch, *size, 3), "bilinear")
        logits = logits_fn(scaled)
        logits = jax.image.resize(logits, (batch, height, width, logits.shape[-1]), "bilinear")
        total = logits if total is None else total + logits
    return total / len(scales)


@dataclasses.dataclass(frozen=True)
class InferenceOptions:
    """How evaluation predicts: whole image (tile 0) or tiles, with flip / multi-scale averaging."""

    tile: int = 0
    stride: int = 0
    flip: bool = False
    scales: tuple[float, ...] = (1.0,)
    pad_value: tuple[int, int, int] = (0, 0, 0)

    @classmethod
    def from_config(cls, eval_config, pad_value: Sequence[int]) -> "InferenceOptions":
        """Read ``eval.tile_size``, ``eval.tile_stride``, ``eval.flip``, ``eval.scales``."""
        scales = tuple(float(s) for s in eval_config.scales)
        if not scales or min(scales) <= 0:
            raise ValueError(f"eval.scales={eval_config.scales!r}: expected positive scales")
        tile = int(eval_config.tile_size)
        stride = int(eval_config.tile_stride) or tile
        if tile:
            tile_origins(tile, tile, stride)  # validates 0 < stride <= tile
        return cls(tile, stride, bool(eval_config.flip), scales,
                   tuple(int(v) for v in pad_value))


def predict_logits(logits_fn: LogitsFn, images: jax.Array,
                   options: InferenceOptions) -> jax.Array:
    """Logits under ``options``: tiles inside flips inside scales, each averaged."""
    def tiled(x):
        if not options.tile:
            return logits_fn(x)
        return tiled_logits(logits_fn, x, tile=options.tile, stride=options.stride,
                            pad_value=options.pad_value)

    def flipped(x):
        return flip_logits(tiled, x) if options.flip else tiled(x)

    if options.scales == (1.0,):
        return flipped(images)
    return multiscale_logits(flipped, images, options.scales)
