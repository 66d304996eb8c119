"""Fault trials: a workdir in use, bad config values, records written only after every check,
sweep reruns, a real full disk, damaged checkpoints, stop requests, bad weight files."""

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid

import numpy as np
import orbax.checkpoint as ocp
import pytest

from fcn_jax import config_checks, data, evaluate, train
from fcn_jax.checkpoint import CheckpointError, Checkpointer
from fcn_jax.config_checks import ConfigError
from fcn_jax.models import pretrained
from fcn_jax.models import build
from fcn_jax.preemption import EXIT_PREEMPTED
from fcn_jax.train import GoodCheckpoints
from fcn_jax.workdir import WorkdirInUse, WorkdirLock
from tests.helpers import cli_flags, tiny_cli_overrides, tiny_config
from tests.test_failures import small_config, snapshot
from tests.test_sweeps import TINY_CONFIG, run_module

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cli(args, **kwargs):
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, env=dict(os.environ, JAX_PLATFORMS="cpu"),
                          **kwargs)


def one_error_line(proc, traceback_free: bool = True) -> str:
    """The command's single ``error:`` line (and, unless told otherwise, no traceback)."""
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert not traceback_free or "Traceback" not in proc.stderr, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, proc.stderr[-3000:]
    return lines[0]


@pytest.fixture(scope="module")
def finished(tiny_data_dir, tmp_path_factory):
    """A finished 4-step run with checkpoints 2 and 4."""
    workdir = str(tmp_path_factory.mktemp("finished"))
    train.train_and_evaluate(small_config(tiny_data_dir, 4), workdir)
    return workdir


# 1. The workdir lock.

HOLDER = """
import sys
from fcn_jax.workdir import WorkdirLock
with WorkdirLock(sys.argv[1]):
    print("held", flush=True)
    sys.stdin.read()
"""


def test_a_second_run_in_a_busy_workdir_stops_at_once_and_a_dead_holder_is_taken_over(
        tiny_data_dir, tmp_path):
    workdir = str(tmp_path)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, workdir], cwd=ROOT, text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline().strip() == "held"  # synchronised, not timed
        with pytest.raises(WorkdirInUse, match=rf"{workdir} is in use by pid {holder.pid} on "
                                               r".* \(lock file .*\.lock\); wait for that run"):
            train.train_and_evaluate(small_config(tiny_data_dir, 2), workdir)
        assert sorted(os.listdir(workdir)) == [".lock"]  # nothing of the run was written
    finally:
        holder.kill()  # SIGKILL: the lock file stays behind, the kernel drops the lock
        holder.wait()
    assert f"pid {holder.pid}" in (tmp_path / ".lock").read_text()
    assert train.train_and_evaluate(small_config(tiny_data_dir, 2), workdir)["step"] == 2
    with WorkdirLock(workdir):  # released at the end of the run
        pass


# 2. The divergence guard's bookkeeping (the end-to-end cases are in test_failures.py).

class RecordingCheckpointer:
    def __init__(self):
        self.saved = []

    def latest_step(self):
        return None

    def save(self, step, state):
        self.saved.append(step)

    directory = "/run/checkpoints"


def test_a_held_state_is_saved_only_after_the_next_loss_is_finite():
    recorder = RecordingCheckpointer()
    good = GoodCheckpoints(recorder)
    state = {"params": {"w": np.ones(3, np.float32)}}
    good.hold(2, state)
    good.confirm(3, np.float32(0.5))
    assert recorder.saved == [2]
    good.hold(4, state)
    with pytest.raises(FloatingPointError, match=r"not finite at step 5; stopped without "
                                                 r"saving. The last good checkpoint is step 2"):
        good.confirm(5, np.float32(np.nan))
    assert recorder.saved == [2]
    with pytest.raises(FloatingPointError, match="parameters are not finite after step 6"):
        good.save_now(6, {"params": {"w": np.array([1.0, np.inf], np.float32)}})
    assert recorder.saved == [2]


# 3. Records change only after every check.

def test_a_refused_rerun_leaves_config_json_and_the_checkpoints_as_they_were(
        finished, tiny_data_dir, tmp_path):
    workdir = shutil.copytree(finished, str(tmp_path / "run"))
    before = {**snapshot(workdir), "config": (tmp_path / "run" / "config.json").read_bytes()}
    other = small_config(tiny_data_dir, 6)
    other.model.fc_channels = 24
    with pytest.raises(CheckpointError, match="does not fit this model"):
        train.train_and_evaluate(other, workdir)
    invalid = small_config(tiny_data_dir, 6)
    invalid.train.log_every = 0
    with pytest.raises(ConfigError, match=r"config.train.log_every = 0: expected an integer "
                                          r">= 1"):
        train.train_and_evaluate(invalid, workdir)
    after = {**snapshot(workdir), "config": (tmp_path / "run" / "config.json").read_bytes()}
    assert after == before


# 8. One validation pass, naming key, value and range.

@pytest.mark.parametrize("key, value, message", [
    ("model.width", 0.0, r"config.model.width = 0.0: expected a number in \(0, inf\)"),
    ("train.num_steps", -5, r"config.train.num_steps = -5: expected an integer >= 0"),
    ("train.log_every", 0, r"config.train.log_every = 0: expected an integer >= 1"),
    ("train.checkpoint_every", 0, r"config.train.checkpoint_every = 0: expected an integer"),
    ("train.eval_every", -1, r"config.train.eval_every = -1: expected an integer >= 1"),
    ("data.scale_range", (0.5,), r"config.data.scale_range = \(0.5,\): expected a pair"),
    ("train.batch_size", 0, r"config.train.batch_size = 0: expected an integer >= 1"),
    ("model.dropout_rate", 1.0, r"config.model.dropout_rate = 1.0: expected a number in "
                                r"\[0, 1\)"),
    ("optim.schedule", "linear", r"config.optim.schedule = 'linear': expected one of"),
    ("eval.tile_stride", 64, r"config.eval.tile_stride = 64: expected at most "
                             r"eval.tile_size \(32\)"),
])
def test_each_out_of_range_value_is_named_with_its_range(key, value, message):
    config = tiny_config()
    config.eval.tile_size = 32
    section, field = key.split(".")
    config[section][field] = value
    with pytest.raises(ConfigError, match=message):
        config_checks.validate(config)


def test_every_shipped_config_passes_validation():
    from configs import classifier, default, voc
    from fcn_jax import sweeps

    configs = [default.get_config(v) for v in default.VARIANTS] + [classifier.get_config()]
    configs += [voc.get_config(arg) for arg in ("fcn32s_fixed", "fcn16s", "fcn8s_atonce")]
    for make_trials in default.SWEEPS.values():  # every trial of every named sweep / study
        for trial in make_trials():
            config = default.get_config()
            sweeps.apply_overrides(config, sweeps.config_overrides(trial))
            configs.append(config)
    for config in configs:
        assert config_checks.problems(config) == []


def test_the_command_line_names_a_bad_value_in_one_line_and_writes_nothing(tiny_data_dir,
                                                                          tmp_path):
    workdir = tmp_path / "run"
    flags = cli_flags("fcn32s", tiny_data_dir, str(workdir), tiny_cli_overrides(2))
    proc = cli(["fcn_jax.main", *flags, "--config.train.log_every=0"])
    assert "config.train.log_every = 0: expected an integer >= 1" in one_error_line(proc)
    assert not workdir.exists()


# 4. Sweep reruns.

def test_a_sweep_rerun_with_other_overrides_is_refused_and_records_stay(tiny_data_dir,
                                                                        tmp_path):
    config_file = tmp_path / "tiny_sweep.py"
    config_file.write_text(TINY_CONFIG.format(data_dir=tiny_data_dir))
    sweep_dir = tmp_path / "sweep"
    args = ["--config", str(config_file), "--sweep", "grid", "--workdir", str(sweep_dir),
            "--emit-commands", str(tmp_path / "commands.txt")]
    assert run_module("experiments.sweep", *args, "--config.train.num_steps=2").returncode == 0
    records = {p: p.read_bytes() for p in sweep_dir.rglob("*.json")}
    proc = run_module("experiments.sweep", *args, "--config.train.num_steps=4")
    assert proc.returncode == 2
    assert "--config.train.num_steps: was 2, now 4" in proc.stderr
    assert {p: p.read_bytes() for p in sweep_dir.rglob("*.json")} == records


# 5. A real full disk.

@contextlib.contextmanager
def small_filesystem(path, size):
    """A size-limited tmpfs at ``path``; skips where this machine cannot mount one."""
    os.makedirs(path)
    if shutil.which("mount") is None or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
            capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (not root); the injected fault below covers it")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=False)


@pytest.mark.slow
def test_a_really_full_disk_is_one_line_naming_the_disk(tiny_data_dir, tmp_path):
    with small_filesystem(tmp_path / "small", "600k") as small:
        flags = cli_flags("fcn32s", tiny_data_dir, str(small / "run"), tiny_cli_overrides(6))
        proc = cli(["fcn_jax.main", *flags])
        line = one_error_line(proc)
        assert "failed: the disk is full (" in line
        # tensorstore (orbax) or Python itself may be the first writer to hit the limit
        assert "RESOURCE_EXHAUSTED" in line or "[Errno 28] No space left on device" in line
        assert "No complete checkpoint was written yet; free disk space" in line


def test_orbax_disk_full_error_keeps_the_last_checkpoint(finished, tiny_data_dir, tmp_path,
                                                         monkeypatch):
    """The exception orbax raises for a full disk (ValueError, tensorstore's
    RESOURCE_EXHAUSTED), injected at the manager's save."""
    workdir = shutil.copytree(finished, str(tmp_path / "run"))
    before = snapshot(workdir)

    def disk_full(self, step, *args, **kwargs):
        raise ValueError(f'RESOURCE_EXHAUSTED: Error writing "params" in OCDBT database at '
                         f'local file "{workdir}": Failed to write 59334 bytes to file 15: '
                         "No space left on device [os_error_code='28']")

    monkeypatch.setattr(ocp.CheckpointManager, "save", disk_full)
    with pytest.raises(CheckpointError, match=r"failed: the disk is full .*The last complete "
                                              r"checkpoint \(step 4\) is intact"):
        train.train_and_evaluate(small_config(tiny_data_dir, 8), workdir)
    monkeypatch.undo()
    assert snapshot(workdir) == before


# 6. Damaged checkpoints.

@pytest.mark.parametrize("damage", ["arrays deleted", "metadata truncated"])
@pytest.mark.slow
def test_a_damaged_latest_checkpoint_names_the_intact_one_and_changes_nothing(
        finished, tiny_data_dir, tmp_path, damage):
    workdir = shutil.copytree(finished, str(tmp_path / "run"))
    item = os.path.join(workdir, "checkpoints", "4", "default")
    if damage == "arrays deleted":
        shutil.rmtree(os.path.join(item, "ocdbt.process_0"))
    else:
        with open(os.path.join(item, "_METADATA"), "r+b") as f:
            f.truncate(10)
    before = snapshot(workdir)
    proc = cli(["fcn_jax.main",
                *cli_flags("fcn32s", tiny_data_dir, workdir, tiny_cli_overrides(6))])
    # Tensorstore's reader threads may still print after the error (seen once in CI runs).
    line = one_error_line(proc, traceback_free=False)
    assert f"checkpoint 4 in {workdir}/checkpoints is unreadable" in line
    assert f"checkpoint 2 is intact: move the damaged one out (mv {workdir}/checkpoints/4 " in line
    assert snapshot(workdir) == before
    shutil.move(os.path.join(workdir, "checkpoints", "4"), os.path.join(workdir, "aside"))
    assert train.train_and_evaluate(small_config(tiny_data_dir, 6), workdir)["step"] == 6


# 7. Stop requests (the end-to-end SIGTERM resume is in test_crash_resume.py).

SIGNALLED_TWICE = """
import os, signal, time
from fcn_jax.preemption import StopRequests
with StopRequests() as stop:
    os.kill(os.getpid(), signal.SIGINT)
    assert stop.requested and stop.signal_name == "SIGINT"
    print("first signal noted", flush=True)
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(30)
"""


def test_a_second_signal_exits_at_once():
    proc = subprocess.run([sys.executable, "-c", SIGNALLED_TWICE], cwd=ROOT, text=True,
                          capture_output=True, timeout=60)
    assert proc.stdout == "first signal noted\n"
    assert proc.returncode == 128 + signal.SIGINT
    assert "SIGINT again: exiting now, without saving" in proc.stderr


@pytest.mark.slow
def test_a_signalled_sweep_stops_its_trial_with_a_checkpoint_and_resumes(tiny_data_dir,
                                                                          tmp_path):
    config_file = tmp_path / "tiny_sweep.py"
    config_file.write_text(TINY_CONFIG.format(data_dir=tiny_data_dir))
    sweep_dir = tmp_path / "sweep"
    args = [sys.executable, "-m", "experiments.sweep", "--config", str(config_file), "--sweep",
            "broken", "--workdir", str(sweep_dir), "--config.train.num_steps=400",
            "--config.train.eval_every=400", "--config.train.checkpoint_every=400"]
    runner = subprocess.Popen(args, cwd=ROOT, text=True, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
    metrics = sweep_dir / "seed=0" / "metrics.jsonl"
    deadline = time.monotonic() + 240
    while runner.poll() is None and time.monotonic() < deadline:
        if metrics.exists() and metrics.read_text().strip():
            runner.send_signal(signal.SIGTERM)  # the first trial is training
            break
        time.sleep(0.05)
    out, err = runner.communicate(timeout=240)
    assert runner.returncode == EXIT_PREEMPTED, err[-3000:]
    assert "seed=0: interrupted (checkpoint saved" in out
    assert "seed=1,batch_size=3: not started (SIGTERM received)" in out
    step = Checkpointer(str(sweep_dir / "seed=0")).latest_step()
    assert step is not None and 1 <= step < 400
    status = json.loads((sweep_dir / "sweep_status.json").read_text())
    assert status["seed=0"].startswith("interrupted")


# 9. Weight files.

@pytest.mark.parametrize("name, content, reason", [
    ("random.npz", bytes(range(256)) * 2, r"it is not a zip archive, which a .npz is"),
    ("empty.npz", b"", r"it is not a zip archive, which a .npz is"),
    ("corrupt.safetensors", b"\x10\x00\x00\x00\x00\x00\x00\x00{not json",
     r"SafetensorError: Error while deserializing header"),
])
def test_an_unreadable_weight_file_names_the_path_and_the_format(tmp_path, name, content,
                                                                 reason):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(pretrained.WeightsError, match=rf"{path} cannot be read as .*\({reason}"):
        pretrained.read_arrays(str(path))


def test_pickled_objects_are_refused_and_pickling_is_never_suggested(tmp_path):
    path = tmp_path / "objects.npz"
    np.savez(path, fc6=np.array([{"a": 1}], dtype=object))
    with pytest.raises(pretrained.WeightsError) as error:
        pretrained.read_arrays(str(path))
    assert "holds pickled objects, which are never loaded" in str(error.value)
    assert "allow_pickle" not in str(error.value)


def test_arrays_of_no_known_layout_are_named_as_such_not_as_a_convention_problem():
    model = build(tiny_config("fcn32s").model, 7, seed=0)
    arrays = {"encoder.layer1.weight": np.zeros((3, 3), np.float32)}
    with pytest.raises(pretrained.WeightsError, match=r"none of its 1 arrays has a layer name "
                                                   r"this importer knows \(encoder.layer1"):
        pretrained.load_reference(model, arrays, source="other.npz")


# 10. Minor cases.

def test_scoring_a_mistyped_workdir_creates_nothing(tiny_data_dir, tmp_path):
    missing = tmp_path / "typo"
    with pytest.raises(FileNotFoundError, match=rf"no checkpoints in {missing}"):
        evaluate.evaluate_checkpoint(small_config(tiny_data_dir, 2), str(missing))
    assert not missing.exists()


def test_evaluate_names_its_source_flag(tiny_data_dir, tmp_path):
    proc = cli(["fcn_jax.evaluate", "--config", "configs/default.py:fcn32s",
                f"--config.data.data_dir={tiny_data_dir}", "--source", str(tmp_path / "typo"),
                "--name", "x", "--table", str(tmp_path / "table")])
    assert f"--source {tmp_path / 'typo'}: no such training workdir or weight" in (
        one_error_line(proc))


def test_an_unknown_builder_config_lists_the_available_ones(tiny_data_dir):
    config = small_config(tiny_data_dir, 2)
    config.data.builder_config = "tyni"
    with pytest.raises(ValueError, match=r"data.builder_config='tyni': fcn_shapes has "
                                         r"\['default', 'tiny'\]"):
        data.build(config)


def test_an_unprepared_read_only_data_dir_names_the_setting(tmp_path):
    with small_filesystem(tmp_path / "ro", "1m") as ro:
        subprocess.run(["mount", "-o", "remount,ro", str(ro)], check=True)
        config = tiny_config()
        config.data.data_dir = str(ro / uuid.uuid4().hex)
        with pytest.raises(PermissionError, match=rf"cannot prepare fcn_shapes in {ro}.*set "
                                                  r"data.data_dir \(or \$TFDS_DATA_DIR\)"):
            data.build(config)
