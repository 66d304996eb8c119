"""Pixel-wise softmax cross-entropy with an ignore label (FCN paper, sections 3 and 4.3).

"The loss is a sum over the spatial dimensions of the final layer." Pixels labelled
``ignore_label`` (255, VOC's boundary) contribute nothing. The result is split into a numerator
and a denominator so that a data-parallel step can sum both over devices and divide once,
which gives the same value as one device seeing the whole batch.
"""

import jax
import jax.numpy as jnp

IGNORE_LABEL = 255
SAMPLING_CELL = 32  # pixels: one cell of the final (stride-32) score layer


def sample_cells(labels: jax.Array, keys: jax.Array, rate: float,
                 cell: int = SAMPLING_CELL) -> jax.Array:
    """Loss sampling (section 4.4: "patchwise training is loss sampling"): each ``cell`` x
    ``cell`` block of the [B,H,W] labels is kept with probability ``rate`` (one draw per block,
    from that example's key of ``keys`` [B]), the others set to ``IGNORE_LABEL``."""
    _, h, w = labels.shape
    grid = (-(-h // cell), -(-w // cell))
    keep = jax.vmap(lambda key: jax.random.bernoulli(key, rate, grid))(keys)
    keep = jnp.repeat(jnp.repeat(keep, cell, axis=1), cell, axis=2)[:, :h, :w]
    return jnp.where(keep, labels, jnp.asarray(IGNORE_LABEL, labels.dtype))


def pixel_cross_entropy_terms(logits: jax.Array, labels: jax.Array, *,
                              class_weights: jax.Array | None = None,
                              ignore_label: int = IGNORE_LABEL) -> tuple[jax.Array, jax.Array]:
    """Return (weighted sum of per-pixel losses, sum of the weights of valid pixels).

    ``logits`` [..., C] float, ``labels`` [...] integer. With class weights w, pixel p of class
    y_p weighs w[y_p] (as torch's ``CrossEntropyLoss(weight=...)``); without, every valid pixel
    weighs 1, so the denominator is the number of valid pixels.
    """
    num_classes = logits.shape[-1]
    labels = labels.astype(jnp.int32)
    valid = (labels != ignore_label) & (labels >= 0) & (labels < num_classes)
    safe = jnp.where(valid, labels, 0)
    log_probs = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    # A one-hot select, not take_along_axis: its gradient is elementwise, not a scatter.
    is_label = safe[..., None] == jnp.arange(num_classes)
    nll = -jnp.sum(jnp.where(is_label, log_probs, 0.0), axis=-1)
    weight = valid.astype(jnp.float32)
    if class_weights is not None:
        weight = weight * jnp.asarray(class_weights, jnp.float32)[safe]
    return jnp.sum(nll * weight), jnp.sum(weight)


def pixel_cross_entropy(logits: jax.Array, labels: jax.Array, *, normalize: bool = True,
                        class_weights: jax.Array | None = None,
                        ignore_label: int = IGNORE_LABEL) -> jax.Array:
    """Mean over valid pixels (``normalize=True``) or the reference release's summed loss."""
    total, weight = pixel_cross_entropy_terms(logits, labels, class_weights=class_weights,
                                              ignore_label=ignore_label)
    return total / jnp.maximum(weight, 1e-12) if normalize else total
