"""Two processes joined by jax.distributed (CPU, gloo) train as one process does."""

import json
import os
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

from fcn_jax import run, train
from fcn_jax.checkpoint import Checkpointer
from fcn_jax.writer import read_metrics
from tests.helpers import (cli_flags, environment_without_cpu_device_count, overridden_config,
                           tiny_cli_overrides)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("mode", ["mesh", "pmap"])
@pytest.mark.slow
def test_two_processes_with_two_devices_each_equal_one_process_with_four(tiny_data_dir,
                                                                          tmp_path, mode):
    overrides = dict(tiny_cli_overrides(4), **{"parallel.mode": mode})
    single, multi = str(tmp_path / "single"), str(tmp_path / "multi")
    config = overridden_config("fcn32s", tiny_data_dir, overrides)
    train.train_and_evaluate(config, single)  # this process: 4 fake CPU devices

    flags = cli_flags("fcn32s", tiny_data_dir, multi, overrides) + [
        f"--coordinator_address=localhost:{free_port()}", "--num_processes=2"]
    env = dict(environment_without_cpu_device_count(devices=2), JAX_PLATFORMS="cpu")
    procs = [subprocess.Popen([sys.executable, "-m", "fcn_jax.main", *flags,
                               f"--process_id={i}"], cwd=ROOT, env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for i in range(2)]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-3000:]

    template = run.Run(config, single).state
    a, b = Checkpointer(single).restore(template), Checkpointer(multi).restore(template)
    assert int(a["step"]) == int(b["step"]) == 4
    for x, y in zip(jax.tree.leaves(a["params"]), jax.tree.leaves(b["params"])):
        np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-6)
    losses = [[r["loss"] for r in read_metrics(w) if r["split"] == "train"]
              for w in (single, multi)]
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-5)
    results = [json.loads(open(os.path.join(w, "results.json"), encoding="utf-8").read())
               for w in (single, multi)]
    assert results[0]["confusion"] == results[1]["confusion"]
