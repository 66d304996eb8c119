"""Loss sampling (FCN paper, section 4.4: "patchwise training is loss sampling"): whole
final-layer cells kept at the sampling rate, the loss and its gradient from those cells only,
and the same sampled step on any number of devices."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fcn_jax import config_checks, losses, optim, steps
from fcn_jax.parallel import DataParallel
from tests.helpers import random_batch
from tests.test_step_reference import BATCH, NUM_CLASSES, tiny_net


def keys(count: int, seed: int = 0) -> jax.Array:
    return jax.random.split(jax.random.PRNGKey(seed), count)


def test_the_sampling_root_is_a_number_no_step_reaches():
    """Sampling keys start from fold_in(rng, SAMPLING_ROOT); were it a step t, the sampling key
    of example i at step s would be the layer-i dropout key of example s at step t. Steps are
    int32, so the root lies in [2**31, 2**32), where fold_in (uint32 data) accepts it."""
    assert 2**31 <= steps.SAMPLING_ROOT < 2**32 and isinstance(steps.SAMPLING_ROOT, int)
    jax.random.fold_in(jax.random.PRNGKey(0), steps.SAMPLING_ROOT)


def test_whole_cells_are_kept_at_the_rate_and_the_rest_ignored():
    labels = np.random.default_rng(0).integers(0, 5, (16, 64, 60)).astype(np.uint8)
    sampled = np.asarray(losses.sample_cells(jnp.asarray(labels), keys(16), 0.25, cell=8))
    kept = sampled != losses.IGNORE_LABEL
    np.testing.assert_array_equal(sampled[kept], labels[kept])
    # one draw per 8x8 cell (the last column of cells is 4 wide): constant inside each cell
    padded = np.pad(kept, ((0, 0), (0, 0), (0, 4)), mode="edge")
    cells = padded.reshape(16, 8, 8, 8, 8)
    assert np.all(cells == cells[:, :, :1, :, :1])
    fraction = cells[:, :, 0, :, 0].mean()  # 1024 cells: binomial std 0.0135
    assert abs(fraction - 0.25) < 4 * np.sqrt(0.25 * 0.75 / 1024)
    every = losses.sample_cells(jnp.asarray(labels), keys(16), 1.0, cell=8)
    np.testing.assert_array_equal(np.asarray(every), labels)


def test_the_loss_gradient_comes_from_the_sampled_cells_only():
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 2, (2, 48, 40, NUM_CLASSES)).astype(np.float32)
    labels = random_batch(2, 2, 48, 40, NUM_CLASSES, ignore_fraction=0.2)["label"]
    sampled = np.asarray(losses.sample_cells(jnp.asarray(labels), keys(2, 3), 0.5, cell=16))
    grad = np.asarray(jax.grad(losses.pixel_cross_entropy)(jnp.asarray(logits),
                                                           jnp.asarray(sampled)))
    # numpy: d/dz of the mean over sampled valid pixels of -log softmax(z)_y
    used = sampled != 255
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    expected = (probs - np.eye(NUM_CLASSES)[np.where(used, sampled, 0)]) / used.sum()
    expected[~used] = 0
    np.testing.assert_allclose(grad, expected, atol=1e-7)
    dropped = (sampled == 255) & (labels != 255)
    assert dropped.sum() > 100 and np.all(grad[dropped] == 0)


def run_step(labels_rate: float, batch: dict, mode: str, num_devices: int):
    """One SGD step of the tiny FCN-16s; the parameters after it."""
    config, (graphdef, params, constants) = tiny_net()
    config.optim.name, config.optim.schedule, config.optim.warmup_steps = "sgd", "constant", 0
    tx = optim.build(config.optim, 1)
    state = {"step": np.int32(0), "params": params, "opt_state": tx.init(params),
             "rng": jax.random.PRNGKey(7)}
    par = DataParallel(mode, num_devices)
    step = par.wrap(functools.partial(
        steps.train_step, graphdef=graphdef, constants=constants, tx=tx,
        num_classes=NUM_CLASSES, normalize_loss=True, class_weights=None,
        sampling_rate=labels_rate), num_args=2)
    state, _ = step(par.put_replicated(state), par.put_batch(batch))
    return [np.asarray(x) for x in jax.tree.leaves(par.get_replicated(state)["params"])]


@pytest.mark.parametrize("mode, num_devices", [("mesh", 1), ("pmap", 2), ("mesh", 4)])
def test_a_sampled_step_is_the_full_step_on_the_sampled_labels(mode, num_devices):
    """The step's draw is per global example (seed, step, index): the same on any device
    count, and the update equals that of an unsampled step whose dropped cells are ignored."""
    batch = random_batch(4, BATCH, 64, 64, NUM_CLASSES, ignore_fraction=0.1)
    sampling_keys = steps.sampling_keys(jax.random.PRNGKey(7), jnp.int32(0), BATCH, None)
    masked = dict(batch, label=np.asarray(losses.sample_cells(
        jnp.asarray(batch["label"]), sampling_keys, 0.5)))
    assert 0 < (masked["label"] == 255).mean() - (batch["label"] == 255).mean() < 0.9
    expected = run_step(1.0, masked, "mesh", 1)
    got = run_step(0.5, batch, mode, num_devices)
    for want, have in zip(expected, got):
        np.testing.assert_allclose(have, want, atol=1e-6, rtol=1e-5)
    unsampled = run_step(1.0, batch, "mesh", 1)
    assert any(np.abs(a - b).max() > 1e-4 for a, b in zip(unsampled, got))


def test_sampling_draws_are_not_the_dropout_draws():
    """Which cells enter the loss must not follow which fc6/fc7 units are dropped: no sampling
    key is an example's dropout key or one of the two keys dropout splits it into."""
    rng = jax.random.PRNGKey(3)
    dropout = set()
    for step in range(3):
        for key in steps.example_keys(rng, jnp.int32(step), 8, None):
            dropout.update(tuple(np.asarray(k).tolist()) for k in (key, *jax.random.split(key)))
    for step in range(3):
        for key in steps.sampling_keys(rng, jnp.int32(step), 8, None):
            assert tuple(np.asarray(key).tolist()) not in dropout
    # the draw is per global example: a shard's keys are its slice of the global batch's
    both = steps.sampling_keys(rng, jnp.int32(2), 8, None)
    shard = jax.vmap(lambda d: steps.sampling_keys(rng, jnp.int32(2), 4, "d"), axis_name="d",
                     axis_size=2)(jnp.arange(2))
    np.testing.assert_array_equal(np.asarray(shard).reshape(8, -1), np.asarray(both))


@pytest.mark.parametrize("rate", [0.0, -0.5, 1.5])
def test_a_sampling_rate_outside_zero_one_is_named(rate):
    config, _ = tiny_net()
    config.loss.sampling_rate = rate
    with pytest.raises(ValueError, match=r"loss\.sampling_rate"):
        config_checks.validate(config)


def test_sampling_in_the_caffe_layout_is_refused():
    config, _ = tiny_net()
    config.loss.sampling_rate, config.model.caffe = 0.5, True
    with pytest.raises(ValueError, match=r"loss\.sampling_rate = 0\.5: expected 1 with "
                                         r"model\.caffe=True"):
        config_checks.validate(config)
