"""pmap and mesh data parallelism on 1, 2 and 4 fake CPU devices give the single-device update."""

import functools

import jax
import numpy as np
import pytest
from flax import nnx

from fcn_jax import models, optim, steps
from fcn_jax.parallel import DataParallel
from tests.helpers import random_batch, tiny_config

NUM_CLASSES = 4


def run_steps(mode: str, num_devices: int, num_steps: int = 3):
    """Train a tiny FCN-8s (dropout on, SGD) for a few steps; return params and losses."""
    config = tiny_config("fcn8s")
    config.optim.name = "sgd"
    config.optim.learning_rate = 0.05
    model = models.build(config, NUM_CLASSES, seed=0)
    graphdef, params, constants = nnx.split(model, nnx.Param, ...)
    tx = optim.build(config.optim, num_steps)
    state = {"step": np.int32(0), "params": params, "opt_state": tx.init(params),
             "rng": jax.random.PRNGKey(1)}
    par = DataParallel(mode, num_devices)
    body = functools.partial(steps.train_step, graphdef=graphdef, constants=constants, tx=tx,
                             num_classes=NUM_CLASSES, normalize_loss=True, class_weights=None)
    step = par.wrap(body, num_args=2)
    state = par.put_replicated(state)
    losses = []
    for i in range(num_steps):
        batch = random_batch(i, 8, 35, 29, NUM_CLASSES, ignore_fraction=0.3)
        state, metrics = step(state, par.put_batch(batch))
        metrics = par.get_replicated(metrics)
        losses.append(float(metrics["loss"]))
    return par.get_replicated(state), losses, metrics["confusion"]


def test_devices_are_faked():
    assert jax.device_count() == 4


@functools.cache
def single_device_run():
    return run_steps("mesh", 1)


@pytest.mark.parametrize("mode,num_devices",
                         [("pmap", 1), ("pmap", 2), ("pmap", 4), ("mesh", 2), ("mesh", 4)])
def test_data_parallel_equals_single_device(mode, num_devices):
    ref_state, ref_losses, ref_conf = single_device_run()
    state, losses, conf = run_steps(mode, num_devices)
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-4)  # float32 sums, other order
    np.testing.assert_array_equal(conf, ref_conf)
    assert int(state["step"]) == 3
    flat_ref = jax.tree.leaves(ref_state["params"])
    flat = jax.tree.leaves(state["params"])
    for a, b in zip(flat, flat_ref):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    # The parameters moved: the comparison is not between two untouched initialisations.
    init = jax.tree.leaves(nnx.split(models.build(tiny_config(), NUM_CLASSES, 0),
                                     nnx.Param, ...)[1])
    assert any(not np.allclose(a, b) for a, b in zip(flat, init))


@pytest.mark.parametrize("mode", ["pmap", "mesh"])
def test_indivisible_batch_is_a_clear_error(mode):
    with pytest.raises(ValueError, match=r"train.batch_size=6 does not divide over 4 devices"):
        DataParallel(mode).check_batch_size(6)
