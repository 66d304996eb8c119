"""The train step against an independent reference (FCN paper, section 4.3; reference release
``solver.prototxt``): a loss written here from the formula, its gradient on the whole global
batch on one device, and the optimiser updates in numpy (SGD with momentum, L2 decay in the
gradient, biases at ``bias_lr_mult`` x the rate and undecayed; Adam with decoupled decay).

Compared with ``steps.train_step`` over two steps on 1, 2 and 4 devices in pmap and mesh mode,
with the mean and the summed (release) loss and with class weights, on a batch with ignore
pixels. Planted bugs this catches: bias multiplier ignored, biases decayed, pmean for psum
(summed loss on several devices), ignored pixels counted, gradients not normalised. Twice more
in mesh mode as every run outside the suite compiles it, at XLA's default optimisation level.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from fcn_jax import backends, models, optim, steps
from fcn_jax.parallel import DataParallel
from tests.helpers import random_batch, tiny_config

NUM_CLASSES = 4
BATCH = 8
NUM_STEPS = 2


def tiny_net():
    """A tiny FCN-16s without dropout (dropout is checked in test_dropout.py)."""
    config = tiny_config("fcn16s")
    config.model.dropout_rate = 0.0
    model = models.build(config.model, NUM_CLASSES, seed=0)
    # Non-zero score layers, so every layer (the skip's too) gets a gradient from step 1.
    rng = np.random.default_rng(5)
    for layer in (model.score_fr, model.score_pool4):
        layer.kernel[...] = rng.normal(0, 0.1, layer.kernel.shape).astype(np.float32)
        layer.bias[...] = rng.normal(0, 0.1, layer.bias.shape).astype(np.float32)
    return config, nnx.split(model, nnx.Param, ...)


def batches():
    return [random_batch(10 + i, BATCH, 40, 36, NUM_CLASSES, ignore_fraction=0.25)
            for i in range(NUM_STEPS)]


def reference_loss(params, graphdef, constants, batch, class_weights, normalize):
    """Softmax cross-entropy from its formula: -log(exp(z_y) / sum_c exp(z_c)) per valid pixel,
    weighted by w[y], summed, divided by the summed weights when normalised."""
    logits = nnx.merge(graphdef, params, constants)(batch["image"])
    labels = jnp.asarray(batch["label"], jnp.int32)
    valid = labels != 255
    label_logit = jnp.take_along_axis(logits, jnp.where(valid, labels, 0)[..., None], -1)[..., 0]
    shift = logits.max(-1)
    log_partition = shift + jnp.log(jnp.exp(logits - shift[..., None]).sum(-1))
    weights = jnp.where(valid, 1.0, 0.0)
    if class_weights is not None:
        weights = weights * jnp.asarray(class_weights)[jnp.where(valid, labels, 0)]
    total = jnp.sum((log_partition - label_logit) * weights)
    return total / jnp.sum(weights) if normalize else total


def is_bias(path) -> bool:
    return any(getattr(k, "key", None) == "bias" for k in path)


def reference_run(optim_config, graphdef, params, constants, class_weights, normalize):
    """Two steps of the optimiser in numpy; returns (params after each step, losses)."""
    lr, wd, mult = optim_config.learning_rate, optim_config.weight_decay, optim_config.bias_lr_mult
    flat, treedef = jax.tree_util.tree_flatten_with_path(params)
    w = [np.asarray(leaf, np.float64) for _, leaf in flat]
    bias = [is_bias(path) for path, _ in flat]
    first = [np.zeros_like(x) for x in w]   # momentum trace, or Adam's first moment
    second = [np.zeros_like(x) for x in w]  # Adam's second moment
    losses, history = [], []
    grad_fn = jax.value_and_grad(reference_loss)
    for t, batch in enumerate(batches(), start=1):
        current = jax.tree_util.tree_unflatten(treedef, [x.astype(np.float32) for x in w])
        loss, grads = grad_fn(current, graphdef, constants, batch, class_weights, normalize)
        losses.append(float(loss))
        g = [np.asarray(x, np.float64) for x in jax.tree.leaves(grads)]
        for i in range(len(w)):
            rate = lr * (mult if bias[i] else 1.0)
            decay = 0.0 if bias[i] else wd
            if optim_config.name == "sgd":  # Caffe: v = m v + (g + wd w); w -= lr v
                first[i] = optim_config.momentum * first[i] + g[i] + decay * w[i]
                w[i] = w[i] - rate * first[i]
            else:  # Adam (bias-corrected moments) plus decoupled decay
                b1, b2 = optim_config.b1, optim_config.b2
                first[i] = b1 * first[i] + (1 - b1) * g[i]
                second[i] = b2 * second[i] + (1 - b2) * g[i] ** 2
                m_hat, v_hat = first[i] / (1 - b1 ** t), second[i] / (1 - b2 ** t)
                w[i] = w[i] - rate * (m_hat / (np.sqrt(v_hat) + 1e-8) + decay * w[i])
        history.append([x.copy() for x in w])
    return history, losses


def step_run(config, graphdef, params, constants, mode, num_devices):
    """The same two steps through steps.train_step and a DataParallel wrapper."""
    tx = optim.build(config.optim, NUM_STEPS)
    state = {"step": np.int32(0), "params": params, "opt_state": tx.init(params),
             "rng": jax.random.PRNGKey(0)}
    class_weights = tuple(config.loss.class_weights) or None
    par = DataParallel(mode, num_devices)
    step = par.wrap(functools.partial(
        steps.train_step, graphdef=graphdef, constants=constants, tx=tx,
        num_classes=NUM_CLASSES, normalize_loss=config.loss.normalize,
        class_weights=class_weights), num_args=2)
    state = par.put_replicated(state)
    history, losses, counters = [], [], []
    for batch in batches():
        state, metrics = step(state, par.put_batch(batch))
        losses.append(float(par.get_replicated(metrics)["loss"]))
        history.append([np.asarray(x) for x in jax.tree.leaves(par.get_replicated(state)["params"])])
        counters.append(int(par.get_replicated(state)["step"]))
    return history, losses, counters


def configure(name, normalize, weighted):
    config, (graphdef, params, constants) = tiny_net()
    o = config.optim
    o.name, o.schedule, o.warmup_steps = name, "constant", 0
    o.weight_decay, o.bias_lr_mult = 5e-3, 2.0
    o.learning_rate = (0.05 if normalize else 5e-5) if name == "sgd" else 1e-3
    config.loss.normalize = normalize
    config.loss.class_weights = (0.5, 1.0, 2.0, 3.0) if weighted else ()
    return config, graphdef, params, constants


SGD_MEAN, SGD_SUMMED = ("sgd", True, False), ("sgd", False, False)
SGD_WEIGHTED, ADAM_WEIGHTED = ("sgd", True, True), ("adam", True, True)
RUNS = ([(SGD_MEAN, mode, n) for mode, n in [("mesh", 1), ("pmap", 2), ("mesh", 2), ("pmap", 4),
                                              ("mesh", 4)]]
        + [(SGD_SUMMED, "pmap", 2), (SGD_SUMMED, "mesh", 4), (SGD_WEIGHTED, "pmap", 4),
           (ADAM_WEIGHTED, "mesh", 1), (ADAM_WEIGHTED, "pmap", 2)])


@functools.cache
def reference(case):
    config, graphdef, params, constants = configure(*case)
    return reference_run(config.optim, graphdef, params, constants,
                         tuple(config.loss.class_weights) or None, config.loss.normalize)


@pytest.mark.parametrize("case, mode, num_devices", RUNS)
def test_the_train_step_equals_the_numpy_reference(case, mode, num_devices):
    check_against_the_reference(case, mode, num_devices)


XLA_DEFAULT_LEVEL = 3  # XLA's DebugOptions default: what runs outside the suite compile at


@pytest.mark.parametrize("case, num_devices", [(SGD_SUMMED, 4), (ADAM_WEIGHTED, 1)])
def test_the_step_compiled_at_xlas_default_level_equals_the_numpy_reference(case, num_devices,
                                                                            monkeypatch):
    """The suite compiles at XLA's backend optimisation level 0 (tests/conftest.py), which no
    run outside it uses and at which XLA:CPU has miscompiled a gradient (docs/testing.md): the
    mesh step compiled at the default level, against the same reference."""
    suite_options, asked = backends.compiler_options, []

    def at_default_level(local_devices=1):
        asked.append(local_devices)
        return {**(suite_options(local_devices) or {}),
                "xla_backend_optimization_level": XLA_DEFAULT_LEVEL}
    monkeypatch.setattr(backends, "compiler_options", at_default_level)
    check_against_the_reference(case, "mesh", num_devices)
    assert asked == [num_devices]


def check_against_the_reference(case, mode, num_devices):
    """Two steps of ``steps.train_step`` on ``num_devices`` in ``mode`` equal the reference's."""
    config, graphdef, params, constants = configure(*case)
    start = [np.asarray(x, np.float64) for x in jax.tree.leaves(params)]
    expected, expected_losses = reference(case)
    got, got_losses, counters = step_run(config, graphdef, params, constants, mode, num_devices)
    np.testing.assert_allclose(got_losses, expected_losses, rtol=1e-4)
    assert counters == list(range(1, NUM_STEPS + 1))  # the step counter the trainer resumes at
    for t in range(NUM_STEPS):
        before = start if t == 0 else expected[t - 1]
        for w0, want, have in zip(before, expected[t], got[t]):
            update, got_update = want - w0, have - w0
            scale = np.abs(update).max() + 1e-12
            np.testing.assert_allclose(got_update, update, atol=2e-3 * scale, rtol=2e-3)
    # Every leaf moved, biases included: the comparison is not of untouched values.
    assert all(np.abs(a - b).max() > 0 for a, b in zip(expected[-1], start))


def one_weighted_step(batch):
    """One jitted step of the class-weighted SGD case on ``batch``: (new state, its loss,
    the reference loss of the starting weights)."""
    config, graphdef, params, constants = configure("sgd", True, True)
    tx = optim.build(config.optim, NUM_STEPS)
    state = {"step": np.int32(0), "params": params, "opt_state": tx.init(params),
             "rng": jax.random.PRNGKey(0)}
    weights = tuple(config.loss.class_weights)
    new_state, metrics = jax.jit(functools.partial(
        steps.train_step, graphdef=graphdef, constants=constants, tx=tx,
        num_classes=NUM_CLASSES, normalize_loss=True, class_weights=weights,
        axis_name=None))(state, batch)
    want = reference_loss(params, graphdef, constants, batch, weights, True)
    return new_state, float(metrics["loss"]), float(want)


def test_a_batch_whose_valid_pixels_weigh_less_than_one_is_still_their_weighted_mean():
    """One valid pixel of class weight 0.5: the mean loss is that pixel's cross-entropy (the
    denominator's floor only keeps an all-ignored batch from dividing by zero)."""
    batch = batches()[0]
    batch["label"][:] = 255
    batch["label"][0, 3, 4] = 0  # class weight 0.5
    _, loss, want = one_weighted_step(batch)
    np.testing.assert_allclose(loss, want, rtol=1e-5)


def test_an_all_ignored_batch_is_a_zero_loss_step_with_finite_weights():
    """A crop of padding only (all 255): zero loss and gradient, no NaN from 0 / 0."""
    batch = batches()[0]
    batch["label"][:] = 255
    new_state, loss, _ = one_weighted_step(batch)
    assert loss == 0.0
    assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(new_state["params"]))
