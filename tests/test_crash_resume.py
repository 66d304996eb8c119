"""SIGKILL a training process (between checkpoints, or while one is being written), or stop it
with SIGTERM, run the same command again: it finishes with exactly the parameters, logs and
results of a run that was never interrupted."""

import json
import os
import signal
import subprocess
import sys

import jax
import numpy as np
import pytest

from fcn_jax import train
from fcn_jax.run import Run
from fcn_jax.checkpoint import Checkpointer
from fcn_jax.preemption import EXIT_PREEMPTED
from fcn_jax.writer import read_metrics
from tests.helpers import cli_flags, overridden_config, tiny_cli_overrides

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NUM_STEPS = 8
OVERRIDES = tiny_cli_overrides(NUM_STEPS)
TIMINGS = ("steps_per_sec", "first_step_seconds", "seconds")  # wall-clock: differ per run

# Run the CLI with a fault injected at an exact point, so no test races the run:
# - KILL_AT_SAVE=N: SIGKILL the process when orbax is about to rename the finished temporary
#   directory of checkpoint N into place (the kill lands in the middle of a save); the hook first
#   records the temporary directory it is about to rename in $KILL_MARKER;
# - SIGNAL_AFTER_LOG=STEP:NAME: send signal NAME to the process once the metrics record of
#   STEP is written (SIGKILL: killed between checkpoints; SIGTERM: a stop request).
FAULTY_RUN = """
import os, signal, sys
from orbax.checkpoint._src.path import atomicity
from fcn_jax import writer
if "KILL_AT_SAVE" in os.environ:
    rename = atomicity.AtomicRenameTemporaryPath.finalize
    async def finalize(self, *args, **kwargs):
        if self.get_final().name == os.environ["KILL_AT_SAVE"]:
            with open(os.environ["KILL_MARKER"], "w") as marker:
                marker.write(str(self.get()))
            os.kill(os.getpid(), signal.SIGKILL)
        return await rename(self, *args, **kwargs)
    atomicity.AtomicRenameTemporaryPath.finalize = finalize
if "SIGNAL_AFTER_LOG" in os.environ:
    at_step, name = os.environ["SIGNAL_AFTER_LOG"].split(":")
    write = writer.MetricWriter.write
    def write_then_signal(self, step, split, scalars):
        write(self, step, split, scalars)
        if step == int(at_step) and split == "train":
            os.kill(os.getpid(), getattr(signal, name))
    writer.MetricWriter.write = write_then_signal
from fcn_jax import config_cli, main
config_cli.run_absl(main.main, "__main__")
"""


def config(data_dir):
    return overridden_config("fcn32s", data_dir, OVERRIDES)


def command(data_dir, workdir, kill_at_save=None, signal_after_log=None):
    flags = cli_flags("fcn32s", data_dir, workdir, OVERRIDES)
    env = {}
    if kill_at_save is not None:
        env = {"KILL_AT_SAVE": str(kill_at_save),
               "KILL_MARKER": os.path.join(workdir, f"killed-at-save-{kill_at_save}")}
    if signal_after_log is not None:
        env["SIGNAL_AFTER_LOG"] = signal_after_log
    if not env:
        return [sys.executable, "-m", "fcn_jax.main", *flags], {}
    return [sys.executable, "-c", FAULTY_RUN, *flags], env


def run(data_dir, workdir, kill_at_save=None, signal_after_log=None):
    """Run to the end (or to the injected fault); return the process."""
    args, env = command(data_dir, workdir, kill_at_save, signal_after_log)
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, **env))
    if not env:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def assert_same_run(data_dir, reference, workdir):
    template = Run(config(data_dir), reference).state
    a, b = Checkpointer(reference).restore(template), Checkpointer(workdir).restore(template)
    assert int(a["step"]) == int(b["step"]) == NUM_STEPS
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(x, y)
    with open(os.path.join(reference, "results.json"), encoding="utf-8") as f:
        expected = json.load(f)
    with open(os.path.join(workdir, "results.json"), encoding="utf-8") as f:
        assert json.load(f) == expected

    def logs(path):
        return [{k: v for k, v in r.items() if k not in TIMINGS} for r in read_metrics(path)]
    assert logs(workdir) == logs(reference)  # every step logged once, same values


@pytest.fixture(scope="module")
def reference(tiny_data_dir, tmp_path_factory):
    """The uninterrupted run."""
    workdir = str(tmp_path_factory.mktemp("reference"))
    train.train_and_evaluate(config(tiny_data_dir), workdir)
    return workdir


@pytest.mark.slow
def test_killed_between_checkpoints_then_mid_save_resumes_exactly(tiny_data_dir, reference,
                                                                  tmp_path):
    workdir = str(tmp_path)
    killed = run(tiny_data_dir, workdir, signal_after_log="3:SIGKILL")
    assert killed.returncode == -signal.SIGKILL
    assert [r["step"] for r in read_metrics(workdir)] == [1, 2, 3]
    assert Checkpointer(workdir).latest_step() in (None, 2)  # 2 is saved once 3's loss is in
    assert run(tiny_data_dir, workdir, kill_at_save=6).returncode == -signal.SIGKILL
    assert Checkpointer(workdir).latest_step() == 4
    assert "6.orbax-checkpoint-tmp" in (tmp_path / "killed-at-save-6").read_text()
    run(tiny_data_dir, workdir)
    assert_same_run(tiny_data_dir, reference, workdir)
    assert not any("tmp" in name for name in os.listdir(tmp_path / "checkpoints"))


@pytest.mark.slow
def test_killed_while_writing_the_first_checkpoint_starts_over_exactly(tiny_data_dir, reference,
                                                                       tmp_path):
    workdir = str(tmp_path)
    assert run(tiny_data_dir, workdir, kill_at_save=2).returncode == -signal.SIGKILL
    assert Checkpointer(workdir).latest_step() is None
    assert [r["step"] for r in read_metrics(workdir)][:2] == [1, 2]  # the save is async
    run(tiny_data_dir, workdir)
    assert_same_run(tiny_data_dir, reference, workdir)


@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_and_the_rerun_equals_an_uninterrupted_run(
        tiny_data_dir, reference, tmp_path):
    workdir = str(tmp_path)
    stopped = run(tiny_data_dir, workdir, signal_after_log="3:SIGTERM")
    assert stopped.returncode == EXIT_PREEMPTED, stopped.stderr[-3000:]
    assert "Traceback" not in stopped.stderr
    assert (f"stopped by SIGTERM after step 3; checkpoint 3 is saved in {workdir}/checkpoints"
            in stopped.stderr)
    assert Checkpointer(workdir).latest_step() == 3
    run(tiny_data_dir, workdir)
    assert_same_run(tiny_data_dir, reference, workdir)
