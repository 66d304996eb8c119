"""The sweep's trial launcher (experiments/launcher.py): a trial forked from the fork server
ends as the same command run as a subprocess does: results, logs, exit codes."""

import json
import os
import subprocess
import sys
import time

import pytest

from experiments.launcher import ForkedTrial, TrialLauncher, forking_available
from fcn_jax.writer import read_metrics
from tests.helpers import ROOT, cli_flags, tiny_cli_overrides

pytestmark = pytest.mark.skipif(not forking_available(), reason="trials are forked on Linux")


def finish(launcher: TrialLauncher, args: list[str], log_path) -> tuple:
    """Start ``python -m fcn_jax.main ARGS`` with ``launcher`` and wait for it: (the process
    object, its exit code, its log)."""
    with open(log_path, "a", encoding="utf-8") as log:
        proc = launcher.start([sys.executable, "-m", "fcn_jax.main", *args], log)
        deadline = time.monotonic() + 240
        while proc.poll() is None:
            assert time.monotonic() < deadline, f"the trial did not end; log: {log_path}"
            time.sleep(0.05)
    return proc, proc.returncode, log_path.read_text()


@pytest.mark.slow
def test_a_forked_trial_equals_the_subprocess_one(tiny_data_dir, tmp_path):
    ends = {}
    for fork in (True, False):
        workdir = tmp_path / f"fork={fork}"
        args = cli_flags("fcn32s", tiny_data_dir, str(workdir), tiny_cli_overrides(3))
        launcher = TrialLauncher(ROOT, dict(os.environ), fork=fork)
        proc, code, log = finish(launcher, args, tmp_path / f"fork={fork}.log")
        assert isinstance(proc, ForkedTrial if fork else subprocess.Popen)
        assert code == 0, log[-3000:]
        assert '"split": "validation"' in log  # the command's summary, printed to the log
        results = json.loads((workdir / "results.json").read_text())
        losses = [r["loss"] for r in read_metrics(str(workdir)) if r["split"] == "train"]
        ends[fork] = (results["metrics"], results["boundary_f"], losses)
    assert len(ends[True][2]) == 3
    assert ends[True] == ends[False]


@pytest.mark.slow
def test_a_forked_trial_exits_with_the_commands_code_and_error(tiny_data_dir, tmp_path):
    args = cli_flags("fcn32s", tiny_data_dir, str(tmp_path / "bad"), tiny_cli_overrides(2))
    args.append("--config.train.num_stepz=3")
    for fork in (True, False):
        launcher = TrialLauncher(ROOT, dict(os.environ), fork=fork)
        _, code, log = finish(launcher, args, tmp_path / f"fork={fork}.log")
        assert code == 2
        assert "error: " in log and "num_stepz" in log and "Traceback" not in log


def test_other_commands_run_as_subprocesses(tmp_path):
    launcher = TrialLauncher(ROOT, dict(os.environ), fork=True)
    with open(tmp_path / "log.txt", "a", encoding="utf-8") as log:
        proc = launcher.start([sys.executable, "-c", "print('hello')"], log)
        assert isinstance(proc, subprocess.Popen)
        assert proc.wait(timeout=60) == 0
    assert (tmp_path / "log.txt").read_text() == "hello\n"


def test_a_call_runs_in_a_forked_process_and_returns_or_raises_in_one_line():
    """TrialLauncher.call (the sweep's check of its start files): the value from a process
    forked from the fork server, or, without forking, from this one; an exception there is a
    RuntimeError here that names it."""
    forked = TrialLauncher(ROOT, dict(os.environ), fork=True)
    assert forked.call(os.getpid) != os.getpid()
    assert forked.call(divmod, 7, 2) == (3, 1)
    with pytest.raises(RuntimeError, match=r"^int failed in a forked process \(ValueError: "
                                           r"invalid literal for int\(\) with base 10: 'x'; "
                                           r"exit code 0\): see its output above$"):
        forked.call(int, "x")
    assert TrialLauncher(ROOT, dict(os.environ), fork=False).call(os.getpid) == os.getpid()
