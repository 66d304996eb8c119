"""pmap and mesh data parallelism on 1, 2 and 4 fake CPU devices give the single-device update;
the host CPU splits into the requested number of devices."""

import functools
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
from flax import nnx

from fcn_jax import models, optim, steps
from fcn_jax.parallel import DataParallel, cpu_devices_set_by_environment, start_cpu_devices
from tests.helpers import random_batch, tiny_config

NUM_CLASSES = 4
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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


@pytest.mark.parametrize("count", [0, -2, "2", 2.0, True])
def test_a_cpu_device_count_below_one_or_not_an_integer_is_refused(count):
    with pytest.raises(ValueError, match=r"parallel.cpu_devices=.*expected a device count >= 1"):
        start_cpu_devices(count)


def test_the_environment_can_fix_the_cpu_device_count():
    assert not cpu_devices_set_by_environment({})
    assert not cpu_devices_set_by_environment({"XLA_FLAGS": "--xla_dump_to=/tmp/x"})
    assert cpu_devices_set_by_environment({"JAX_NUM_CPU_DEVICES": "3"})
    assert cpu_devices_set_by_environment(
        {"XLA_FLAGS": "--xla_cpu_use_thunk_runtime=true --xla_force_host_platform_device_count=4"})


def devices_after_start(count: int, **environ) -> list[str]:
    """[whether start_cpu_devices changed the count, the CPU device count] in a fresh process."""
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_NUM_CPU_DEVICES")}
    code = ("import jax; from fcn_jax.parallel import start_cpu_devices; "
            f"print(start_cpu_devices({count}), len(jax.devices('cpu')))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env={**env, **environ})
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()


def test_start_cpu_devices_splits_the_host_before_jax_starts():
    assert devices_after_start(3) == ["True", "3"]
    assert devices_after_start(1) == ["True", "1"]


def test_start_cpu_devices_leaves_a_count_the_environment_set():
    assert devices_after_start(3, JAX_NUM_CPU_DEVICES="2") == ["False", "2"]
