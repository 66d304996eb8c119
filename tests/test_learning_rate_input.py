"""The trainer's learning rate is an input of its compiled step (FCN paper, section 4.3: each
net's rate found by line search): the same updates as the rate compiled in as a constant, and
one program for every rate."""

import functools
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from fcn_jax import optim, run, steps, sweeps
from tests.helpers import ROOT, random_batch, tiny_config

SETTINGS = {
    "adam, cosine after warm-up": {"optim.name": "adam", "optim.schedule": "cosine",
                                   "optim.warmup_steps": 2, "optim.learning_rate": 3e-3},
    "paper's sgd, biases at 2x": {"optim.name": "sgd", "optim.momentum": 0.9,
                                  "optim.schedule": "constant", "optim.learning_rate": 0.01,
                                  "optim.bias_lr_mult": 2.0, "optim.weight_decay": 5e-4},
    "sgd, step after warm-up": {"optim.name": "sgd", "optim.momentum": 0.9,
                                "optim.schedule": "step", "optim.decay_steps": (3,),
                                "optim.warmup_steps": 1, "optim.learning_rate": 0.07},
}
NUM_STEPS = 4


def tiny_run(data_dir: str, overrides: dict, mode: str = "mesh") -> run.Run:
    config = tiny_config("fcn16s")
    config.data.data_dir = data_dir
    config.train.num_steps = NUM_STEPS
    config.parallel.mode, config.parallel.num_devices = mode, 2
    sweeps.apply_overrides(config, overrides)
    return run.Run(config, "")


def train(trainer: run.Run, step) -> list:
    """``NUM_STEPS`` steps from the run's initial state (kept: the step donates its input)."""
    state = trainer.parallel.put_replicated(jax.tree.map(np.array, trainer.state))
    for i in range(NUM_STEPS):
        state, _ = step(state, trainer.parallel.put_batch(
            random_batch(i, 8, 48, 48, trainer.num_classes)))
    return [np.asarray(leaf) for leaf in jax.tree.leaves(trainer.parallel.get_replicated(state))]


@pytest.mark.parametrize("mode", ["mesh", "pmap"])
@pytest.mark.parametrize("setting", sorted(SETTINGS))
def test_the_rate_as_an_input_updates_as_the_rate_compiled_in(tiny_data_dir, setting, mode):
    """Bit for bit, with the biases' multiplier at 1 or 2 (a power of two: the rate times it
    rounds the same in float32 as in Python's float64; another multiplier may differ in the
    last bit)."""
    trainer = tiny_run(tiny_data_dir, SETTINGS[setting], mode)
    config = trainer.config
    constant = trainer.parallel.wrap(functools.partial(
        steps.train_step, tx=optim.build(config.optim, NUM_STEPS), graphdef=trainer.graphdef,
        constants=trainer.constants, num_classes=trainer.num_classes,
        normalize_loss=config.loss.normalize, class_weights=None), num_args=2, donate=(0,))
    as_input, compiled_in = train(trainer, trainer.train_step), train(trainer, constant)
    assert len(as_input) == len(compiled_in)
    for a, b in zip(as_input, compiled_in):
        np.testing.assert_array_equal(a, b)


def test_runs_that_differ_only_in_rate_share_the_compiled_step(tiny_data_dir, tmp_path):
    """A second process training at another rate finds every program in the persistent
    compilation cache the first one filled (a line search compiles its net once)."""
    script = ("import sys; from tests.test_learning_rate_input import tiny_run, train; "
              "t = tiny_run(sys.argv[1], {'optim.learning_rate': float(sys.argv[2])}); "
              "train(t, t.train_step)")
    env = dict(os.environ, JAX_COMPILATION_CACHE_DIR=str(tmp_path / "cache"),
               JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
    entries = []
    for rate in ("0.003", "0.001"):
        subprocess.run([sys.executable, "-c", script, tiny_data_dir, rate], cwd=ROOT, env=env,
                       check=True, capture_output=True)
        entries.append(sorted(p.name for p in (tmp_path / "cache").iterdir()))
    assert any("train_step" in name or "at_rate" in name for name in entries[0]), entries[0]
    assert entries[1] == entries[0]
