"""pmap and mesh data parallelism on 1, 2 and 4 fake CPU devices give the single-device update;
the host CPU splits into the requested number of devices."""

import functools
import subprocess
import sys

import jax
import numpy as np
import pytest
from flax import nnx

from fcn_jax import backends, models, optim, steps
from fcn_jax.backends.cpu import cpu_devices_set_by_environment, start_cpu_devices
from fcn_jax.parallel import DataParallel
from tests.helpers import ROOT, environment_without_cpu_device_count, random_batch, tiny_config

NUM_CLASSES = 4


def run_steps(mode: str, num_devices: int, num_steps: int = 3, batch_size: int = 8):
    """Train a tiny FCN-8s (dropout on, SGD) for a few steps; return params and losses."""
    config = tiny_config("fcn8s")
    config.optim.name = "sgd"
    config.optim.learning_rate = 0.05
    model = models.build(config.model, NUM_CLASSES, seed=0)
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
        batch = random_batch(i, batch_size, 35, 29, NUM_CLASSES, ignore_fraction=0.3)
        state, metrics = step(state, par.put_batch(batch))
        metrics = par.get_replicated(metrics)
        losses.append(float(metrics["loss"]))
    return par.get_replicated(state), losses, metrics["confusion"]


def test_devices_are_faked():
    assert jax.device_count() == 4


@functools.cache
def single_device_run(batch_size: int = 8):
    return run_steps("mesh", 1, batch_size=batch_size)


# Batches of 3 per device: an example's index (shard offset + position, which picks its dropout
# key) written with | or ^ instead of + equals the right one for power-of-two shards only.
@pytest.mark.parametrize("mode,num_devices,batch_size",
                         [("pmap", 1, 8), ("pmap", 2, 8), ("pmap", 4, 8), ("mesh", 2, 8),
                          ("mesh", 4, 8), ("pmap", 2, 6)])
def test_data_parallel_equals_single_device(mode, num_devices, batch_size):
    ref_state, ref_losses, ref_conf = single_device_run(batch_size)
    state, losses, conf = run_steps(mode, num_devices, batch_size=batch_size)
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-4)  # float32 sums, other order
    np.testing.assert_array_equal(conf, ref_conf)
    assert int(state["step"]) == 3
    flat_ref = jax.tree.leaves(ref_state["params"])
    flat = jax.tree.leaves(state["params"])
    for a, b in zip(flat, flat_ref):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    # The parameters moved: the comparison is not between two untouched initialisations.
    init = jax.tree.leaves(nnx.split(models.build(tiny_config().model, NUM_CLASSES, 0),
                                     nnx.Param, ...)[1])
    assert any(not np.allclose(a, b) for a, b in zip(flat, init))


@pytest.mark.parametrize("mode", ["pmap", "mesh"])
def test_indivisible_batch_is_a_clear_error(mode):
    with pytest.raises(ValueError, match=r"train.batch_size=6 does not divide over 4 devices"):
        DataParallel(mode).check_batch_size(6)


@pytest.mark.parametrize("count", [0, -2, "2", 2.0, True, None])
def test_a_cpu_device_count_below_one_or_not_an_integer_is_refused(count):
    with pytest.raises(ValueError, match=r"parallel.cpu_devices=.*expected a device count >= 1"):
        start_cpu_devices(count)


def test_a_numpy_integer_is_a_count():
    start_cpu_devices(np.int64(2))  # the tests' XLA_FLAGS fix the count: nothing changes
    assert jax.device_count() == 4


def test_the_environment_can_fix_the_cpu_device_count():
    assert not cpu_devices_set_by_environment({})
    assert not cpu_devices_set_by_environment({"XLA_FLAGS": "--xla_dump_to=/tmp/x"})
    assert cpu_devices_set_by_environment({"JAX_NUM_CPU_DEVICES": "3"})
    assert cpu_devices_set_by_environment(
        {"XLA_FLAGS": "--xla_cpu_use_thunk_runtime=true --xla_force_host_platform_device_count=4"})


def cpu_devices_after_start(count: int, **environ) -> int:
    """The CPU device count a fresh process sees after start_cpu_devices(count)."""
    code = ("import jax; from fcn_jax.backends.cpu import start_cpu_devices; "
            f"start_cpu_devices({count}); print(len(jax.devices('cpu')))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=120,
                          env={**environment_without_cpu_device_count(), **environ})
    assert proc.returncode == 0, proc.stderr
    return int(proc.stdout)


def test_start_cpu_devices_splits_the_host_before_jax_starts():
    assert cpu_devices_after_start(3) == 3
    assert cpu_devices_after_start(1) == 1


def test_start_cpu_devices_leaves_a_count_the_environment_set():
    assert cpu_devices_after_start(3, JAX_NUM_CPU_DEVICES="2") == 2


def test_the_command_line_applies_parallel_cpu_devices(tmp_path):
    """fcn_jax.main splits the CPU before training starts (training itself is stubbed out)."""
    code = ("import sys, jax; from fcn_jax import config_cli, main, train; "
            "train.train_and_evaluate = lambda config, workdir: sys.exit("
            "f'devices={jax.device_count()}'); "
            "config_cli.run_absl(main.main, '__main__')")
    proc = subprocess.run([sys.executable, "-c", code, "--config", "configs/default.py",
                           "--workdir", str(tmp_path), "--config.parallel.cpu_devices=2"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env=environment_without_cpu_device_count())
    assert "devices=2" in proc.stderr, proc.stderr


def test_a_mesh_step_on_several_devices_gets_their_compiler_options(monkeypatch):
    asked = []
    monkeypatch.setattr(backends, "compiler_options", lambda local_devices=1: asked.append(local_devices))
    for devices in (1, 2, 4):
        par = DataParallel("mesh", devices)
        assert par.local_device_count == devices
        par.wrap(lambda state, batch, axis_name: state, num_args=2)
    assert asked == [1, 2, 4]
