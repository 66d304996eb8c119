"""SIGKILL a training process (between checkpoints, or while one is being written), or stop it
with SIGTERM, run the same command again: it finishes with exactly the parameters, logs and
results of a run that was never interrupted."""

import json
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from fcn_jax import train
from fcn_jax.checkpoint import Checkpointer
from fcn_jax.preemption import EXIT_PREEMPTED
from fcn_jax.writer import read_metrics
from tests.helpers import cli_flags, overridden_config, tiny_cli_overrides

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NUM_STEPS = 8
OVERRIDES = tiny_cli_overrides(NUM_STEPS)

# Run the CLI, but SIGKILL the process when orbax is about to rename the finished temporary
# directory of checkpoint $KILL_AT_SAVE into place: the kill lands in the middle of a save.
# Before the kill, the hook records the temporary directory it is about to rename, so the
# test knows the kill came mid-save without timing or directory listings.
KILLED_MID_SAVE = """
import os, signal, sys
from orbax.checkpoint._src.path import atomicity
rename = atomicity.AtomicRenameTemporaryPath.finalize
async def finalize(self, *args, **kwargs):
    if self.get_final().name == os.environ["KILL_AT_SAVE"]:
        with open(os.environ["KILL_MARKER"], "w") as marker:
            marker.write(str(self.get()))
        os.kill(os.getpid(), signal.SIGKILL)
    return await rename(self, *args, **kwargs)
atomicity.AtomicRenameTemporaryPath.finalize = finalize
from absl import app
from fcn_jax import main
app.run(main.main, argv=[sys.argv[0], *sys.argv[1:]])
"""


def config(data_dir):
    return overridden_config("fcn32s", data_dir, OVERRIDES)


def command(data_dir, workdir, kill_at_save=None):
    flags = cli_flags("fcn32s", data_dir, workdir, OVERRIDES)
    if kill_at_save is None:
        return [sys.executable, "-m", "fcn_jax.main", *flags], {}
    marker = os.path.join(workdir, f"killed-at-save-{kill_at_save}")
    return [sys.executable, "-c", KILLED_MID_SAVE, *flags], {"KILL_AT_SAVE": str(kill_at_save),
                                                             "KILL_MARKER": marker}


def run(data_dir, workdir, kill_at_save=None):
    """Run to the end (or to the self-inflicted SIGKILL); return the exit status."""
    args, env = command(data_dir, workdir, kill_at_save)
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, **env))
    if kill_at_save is None:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.returncode


def run_and_kill_after_logs(data_dir, workdir, num_lines):
    """Start a run and SIGKILL it once metrics.jsonl holds ``num_lines`` records."""
    args, _ = command(data_dir, workdir)
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    path = os.path.join(workdir, "metrics.jsonl")
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if os.path.exists(path) and len(read_metrics(workdir)) >= num_lines:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.01)
    assert proc.wait(timeout=60) == -signal.SIGKILL, "the run ended before it was killed"


def assert_same_run(data_dir, reference, workdir):
    template = train.Trainer(config(data_dir), reference).state
    a, b = Checkpointer(reference).restore(template), Checkpointer(workdir).restore(template)
    assert int(a["step"]) == int(b["step"]) == NUM_STEPS
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(x, y)
    with open(os.path.join(reference, "results.json"), encoding="utf-8") as f:
        expected = json.load(f)
    with open(os.path.join(workdir, "results.json"), encoding="utf-8") as f:
        assert json.load(f) == expected

    def logs(path):
        return [{k: v for k, v in r.items() if k != "steps_per_sec"} for r in read_metrics(path)]
    assert logs(workdir) == logs(reference)  # every step logged once, same values


@pytest.fixture(scope="module")
def reference(tiny_data_dir, tmp_path_factory):
    """The uninterrupted run."""
    workdir = str(tmp_path_factory.mktemp("reference"))
    train.train_and_evaluate(config(tiny_data_dir), workdir)
    return workdir


def test_killed_between_checkpoints_then_mid_save_resumes_exactly(tiny_data_dir, reference,
                                                                  tmp_path):
    workdir = str(tmp_path)
    run_and_kill_after_logs(tiny_data_dir, workdir, num_lines=3)
    assert Checkpointer(workdir).latest_step() in (None, 2, 4)
    assert run(tiny_data_dir, workdir, kill_at_save=6) == -signal.SIGKILL
    assert Checkpointer(workdir).latest_step() == 4
    assert "6.orbax-checkpoint-tmp" in (tmp_path / "killed-at-save-6").read_text()
    run(tiny_data_dir, workdir)
    assert_same_run(tiny_data_dir, reference, workdir)
    assert not any("tmp" in name for name in os.listdir(tmp_path / "checkpoints"))


def test_killed_while_writing_the_first_checkpoint_starts_over_exactly(tiny_data_dir, reference,
                                                                       tmp_path):
    workdir = str(tmp_path)
    assert run(tiny_data_dir, workdir, kill_at_save=2) == -signal.SIGKILL
    assert Checkpointer(workdir).latest_step() is None
    assert [r["step"] for r in read_metrics(workdir)][:2] == [1, 2]  # the save is async
    run(tiny_data_dir, workdir)
    assert_same_run(tiny_data_dir, reference, workdir)


def test_sigterm_saves_a_checkpoint_and_the_rerun_equals_an_uninterrupted_run(
        tiny_data_dir, reference, tmp_path):
    workdir = str(tmp_path)
    args, _ = command(tiny_data_dir, workdir)
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline:
        if os.path.exists(os.path.join(workdir, "metrics.jsonl")) and read_metrics(workdir):
            proc.send_signal(signal.SIGTERM)  # after step 1 is logged: mid-run
            break
        time.sleep(0.01)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == EXIT_PREEMPTED, err[-3000:]
    saved = int(err.split("checkpoint ")[-1].split(" is saved")[0])
    assert f"stopped by SIGTERM after step {saved}" in err and "Traceback" not in err
    assert 1 <= saved < NUM_STEPS and Checkpointer(workdir).latest_step() == saved
    run(tiny_data_dir, workdir)
    assert_same_run(tiny_data_dir, reference, workdir)
