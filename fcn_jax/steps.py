"""The train-step and eval-step bodies (FCN paper, section 4.3: end-to-end pixelwise training).

Each body is a pure function of arrays. ``axis_name`` is the pmap axis when the body runs
under ``jax.pmap`` (sums go through ``lax.psum``) and None under ``jax.jit`` over a device
mesh, where XLA partitions the same global computation. Loss sums and valid-pixel counts are
summed over devices before dividing, and dropout keys are per global example index, so both
wrappers produce the update a single device would.
"""

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from fcn_jax import losses, metrics
from fcn_jax.inference import InferenceOptions, predict_logits

TrainState = dict[str, Any]  # {"step": int32[], "params": nnx.State, "opt_state", "rng": key}
# Loss sampling draws from its own root, rng folded with a number no step reaches: keys made
# from an example's dropout key (fold_in(key, 1) is split(key)[1], the fc7 dropout key) would
# tie which cells enter the loss to which fc7 units are dropped.
SAMPLING_ROOT = 2**32 - 1


def global_example_offset(local_batch: int, axis_name: str | None) -> jax.Array:
    """Index of this shard's first example in the global batch."""
    if axis_name is None:
        return jnp.int32(0)
    return jax.lax.axis_index(axis_name) * local_batch


def example_keys(rng: jax.Array, step: jax.Array, local_batch: int,
                 axis_name: str | None) -> jax.Array:
    """One dropout key per example, a function of (seed, step, global example index) only."""
    step_key = jax.random.fold_in(rng, step)
    index = global_example_offset(local_batch, axis_name) + jnp.arange(local_batch)
    return jax.vmap(lambda i: jax.random.fold_in(step_key, i))(index)


def sampling_keys(rng: jax.Array, step: jax.Array, local_batch: int,
                  axis_name: str | None) -> jax.Array:
    """One loss-sampling key per example, like ``example_keys`` but independent of dropout."""
    return example_keys(jax.random.fold_in(rng, SAMPLING_ROOT), step, local_batch, axis_name)


def all_sum(tree, axis_name: str | None):
    """Sum over the pmap axis (identity under jit, whose arrays are already global)."""
    return tree if axis_name is None else jax.lax.psum(tree, axis_name)


def train_step(state: TrainState, batch: dict, *, graphdef, constants, tx, num_classes: int,
               normalize_loss: bool, class_weights, axis_name: str | None,
               sampling_rate: float = 1.0):
    """One SGD/Adam step on a batch {image uint8 [B,H,W,3], label [B,H,W]}; returns metrics.
    With ``sampling_rate`` < 1 the loss sees only a random part of the final-layer cells."""
    images, labels = batch["image"], batch["label"]
    keys = example_keys(state["rng"], state["step"], images.shape[0], axis_name)
    loss_labels = labels
    if sampling_rate < 1:
        loss_labels = losses.sample_cells(
            labels, sampling_keys(state["rng"], state["step"], images.shape[0], axis_name),
            sampling_rate)

    def loss_terms(params):
        model = nnx.merge(graphdef, params, constants)
        logits = model(images, dropout_keys=keys)
        total, weight = losses.pixel_cross_entropy_terms(logits, loss_labels,
                                                         class_weights=class_weights)
        return total, (weight, model.kernels.class_predictions(logits))

    (total, (weight, predictions)), grads = jax.value_and_grad(loss_terms, has_aux=True)(
        state["params"])
    confusion = metrics.confusion_matrix(labels, predictions, num_classes)
    total, weight, grads, confusion = all_sum((total, weight, grads, confusion), axis_name)
    denom = jnp.maximum(weight, 1e-12) if normalize_loss else 1.0
    grads = jax.tree.map(lambda g: g / denom, grads)
    updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
    new_state = dict(state, step=state["step"] + 1, opt_state=opt_state,
                     params=jax.tree.map(jnp.add, state["params"], updates))
    return new_state, {"loss": total / denom, "confusion": confusion}


def predict(params, images: jax.Array, *, graphdef, constants,
            options: InferenceOptions = InferenceOptions()) -> jax.Array:
    """Per-pixel class predictions (argmax of the logits), no dropout, under ``options``."""
    model = nnx.merge(graphdef, params, constants)
    return model.kernels.class_predictions(predict_logits(model, images, options))


def eval_step(params, batch: dict, totals: dict, *, graphdef, constants, num_classes: int,
              options: InferenceOptions, axis_name: str | None) -> dict:
    """Add one batch's confusion matrix and boundary counts (ignore pixels excluded)."""
    pred = predict(params, batch["image"], graphdef=graphdef, constants=constants,
                   options=options)
    batch_totals = {"confusion": metrics.confusion_matrix(batch["label"], pred, num_classes),
                    "boundary": metrics.boundary_counts(batch["label"], pred, num_classes)}
    return jax.tree.map(jnp.add, totals, all_sum(batch_totals, axis_name))
