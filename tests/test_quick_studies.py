"""Each study's quick form (``experiments.sweep --quick``): the trial mapping, the refusals,
and every study of configs/default.py run end to end on the smoke config and reported."""

import json
import math
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from configs import classifier, default
from fcn_jax import models, sweeps
from fcn_jax.data import embedded
from fcn_jax.models import pretrained
from tests.helpers import environment_without_cpu_device_count, run_module

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_a_quick_trial_is_the_smoke_config_with_its_counts_scaled():
    full = {"seed": 1, "train.num_steps": 1000, "train.eval_every": 250,
            "train.batch_size": 64, "data.train_examples": 131, "optim.name": "sgd",
            sweeps.INIT_KEY: default.CLASSIFIER_WEIGHTS}
    quick = default.quick_trial(full)
    assert quick == {**default.SMOKE, "seed": 1, "optim.name": "sgd",
                     sweeps.INIT_KEY: default.CLASSIFIER_WEIGHTS,
                     "train.num_steps": 10, "train.eval_every": 10,
                     "train.checkpoint_every": 10, "train.log_every": 5,
                     "train.num_overlays": 0, "train.batch_size": 16,
                     "data.train_examples": 2}
    short = default.quick_trial({"train.num_steps": 150, "train.batch_size": 1})
    assert (short["train.num_steps"], short["train.log_every"], short["train.batch_size"]) == (
        2, 2, 1)
    stitched_only = default.quick_trial({"train.num_steps": 0})
    assert (stitched_only["train.num_steps"], stitched_only["train.eval_every"]) == (0, 1)
    unset = default.quick_trial({"model.decoder": "nearest"})
    assert unset["train.num_steps"] == default.SMOKE["train.num_steps"]
    assert unset["train.batch_size"] == default.SMOKE["train.batch_size"]
    assert default.quick_trial({"seed": default.QUICK_SEEDS}) is None


def test_the_quick_form_matches_the_data_and_classifier_it_runs_on():
    assert default.TRAIN_SCENES == {c.name: c.num_train
                                    for c in embedded.FcnShapes.BUILDER_CONFIGS}
    trunk, fcn = classifier.get_config("quick").model, default.get_config("smoke").model
    assert (trunk.width, trunk.fc_channels, trunk.fc6_kernel) == (
        fcn.width, fcn.fc_channels, fcn.fc6_kernel)
    inputs = default.quick_inputs("/w")
    assert set(inputs) == set(default.BACKBONE_CLASSIFIERS.values())
    quick_file, command = inputs[default.CLASSIFIER_WEIGHTS]
    assert quick_file == "/w/classifier/vgg16_classifier.npz"
    assert command[-2:] == ["--workdir", "/w/classifier"]
    assert "configs/classifier.py:vgg16,quick" in command
    for backbone, path in default.BACKBONE_CLASSIFIERS.items():
        quick_file, command = inputs[path]
        assert quick_file.endswith(f"/{backbone}_classifier.npz")
        assert classifier.get_config(command[command.index("--config") + 1].split(":")[1]
                                     ).model.backbone == backbone


def test_quick_needs_a_config_with_a_quick_form(tmp_path):
    config = tmp_path / "plain.py"
    config.write_text("from configs import default\nget_config = default.get_config\n"
                      "SWEEPS = {'one': lambda: [{'seed': 0}]}\n")
    proc = run_module("experiments.sweep", "--config", str(config), "--sweep", "one",
                      "--workdir", str(tmp_path / "sweep"), "--quick")
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        f"error: {config} defines no quick form (quick_trial and quick_inputs), which --quick "
        "needs; see configs/default.py")
    assert not (tmp_path / "sweep").exists()


def test_a_workdir_holds_one_form_of_a_study(tmp_path):
    sweep_dir, commands = tmp_path / "balancing", tmp_path / "commands.txt"
    args = ["--config", "configs/default.py", "--sweep", "balancing", "--workdir", str(sweep_dir)]
    full = run_module("experiments.sweep", *args, "--emit-commands", str(commands))
    assert full.returncode == 0, full.stderr[-2000:]
    manifest = (sweep_dir / "sweep.json").read_text()
    quick = run_module("experiments.sweep", *args, "--quick")
    assert quick.returncode == 2
    assert quick.stderr.strip() == (
        f"error: {sweep_dir} holds the full form of sweep 'balancing', not its quick form; "
        "choose another --workdir")
    assert (sweep_dir / "sweep.json").read_text() == manifest
    assert not (sweep_dir / "classifier").exists()


@pytest.fixture(scope="session")
def quick_env(tiny_data_dir):
    """The environment the quick studies run in: the tiny datasets, one CPU device (the
    learning-regime study's heavy arm trains on batches of one image)."""
    return dict(environment_without_cpu_device_count(), TFDS_DATA_DIR=tiny_data_dir,
                JAX_PLATFORMS="cpu")


@pytest.fixture(scope="session")
def quick_classifiers(quick_env, tmp_path_factory):
    """One quick classifier per backbone and test session, copied into each study's workdir
    where ``--quick`` would otherwise pretrain its own (seconds each)."""
    workdir = tmp_path_factory.mktemp("quick")
    for quick_file, command in default.quick_inputs(str(workdir)).values():
        proc = subprocess.run([sys.executable, *command], cwd=ROOT, env=quick_env,
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0 and os.path.exists(quick_file), proc.stderr[-2000:]
    return workdir


def sweep_command(name: str, sweep_dir, env: dict, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "experiments.sweep", "--config",
                           "configs/default.py", "--sweep", name, "--workdir", str(sweep_dir),
                           "--quick", *extra], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["augmentation", "backbone_lr", "backbones", "balancing",
                                  "convergence", "data_size", "learning_regime", "loss_sampling", "precision",
                                  "pretraining", "sgd_lr", "skips", "upsampling"])
def test_the_quick_form_of_each_study_runs_and_reports(name, quick_env, quick_classifiers,
                                                       tmp_path):
    """docs/experiments.md: ``python -m experiments.sweep ... --sweep NAME --quick`` then the
    report, as documented, with the seeds and arms of the full study."""
    sweep_dir = tmp_path / name
    shutil.copytree(quick_classifiers, sweep_dir)
    proc = sweep_command(name, sweep_dir, quick_env, "--parallel", "2")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "making" not in proc.stdout  # the session's classifier was used
    _, full_trials, study = sweeps.load_sweep("configs/default.py", name)
    quick_trials = [t for t in full_trials if t.get("seed", 0) < default.QUICK_SEEDS]
    status = json.loads((sweep_dir / "sweep_status.json").read_text())
    assert list(status.values()) == ["finished"] * len(quick_trials)

    first = json.loads((sweep_dir / sorted(status)[0] / "config.json").read_text())
    assert first["data"]["builder_config"] == "tiny"
    full_steps = max(t.get("train.num_steps", 20) for t in quick_trials)  # 20: SMOKE's
    assert first["train"]["num_steps"] <= max(2, math.ceil(full_steps / 100))
    assert first["train"]["num_overlays"] == 0
    if first["model"]["init_from"].endswith(".npz"):
        backbone = first["model"]["backbone"]
        directory = "classifier" if backbone == "vgg16" else f"classifier_{backbone}"
        assert first["model"]["init_from"] == str(sweep_dir / directory
                                                  / f"{backbone}_classifier.npz")

    proc = run_module("experiments.report", str(sweep_dir))
    assert proc.returncode == 0, proc.stderr[-3000:]
    markdown = (sweep_dir / "report.md").read_text()
    assert "Quick form (`--quick`)" in markdown
    payload = json.loads((sweep_dir / "report.json").read_text())
    seeds = {min(default.QUICK_SEEDS, len({t.get("seed", 0) for t in full_trials}))}
    assert {len(row["trials"]) for row in payload["rows"]} == seeds
    if study:
        assert len(payload["study"]["claims"]) == len(study["claims"])
        assert markdown.count("| paper says |") == 1
    if name == "balancing":  # a rerun finds every trial finished (tested once: seconds each)
        again = sweep_command(name, sweep_dir, quick_env)
        assert again.returncode == 0
        assert set(json.loads((sweep_dir / "sweep_status.json").read_text()).values()) == {
            "skipped (finished before)"}


def test_every_study_has_its_quick_test():
    """The names above are spelled out for the documented-commands check, which reads them
    from the decorator; they are every study of configs/default.py."""
    (mark,) = [m for m in test_the_quick_form_of_each_study_runs_and_reports.pytestmark
               if m.name == "parametrize"]
    assert set(mark.args[1]) == set(default.STUDIES) | {"sgd_lr", "convergence", "backbone_lr"}


def config_with_quick_inputs(path, sweep: str, trials: list[dict], body: str):
    """A config file at ``path``: the default config, one sweep of ``trials``, its quick form,
    and a ``quick_inputs(workdir)`` whose body is ``body``."""
    path.write_text("from configs import default\nget_config = default.get_config\n"
                    f"SWEEPS = {{{sweep!r}: lambda: {trials!r}}}\n"
                    "quick_trial = default.quick_trial\n"
                    "def quick_inputs(workdir):\n" + body)
    return path


def test_a_failing_quick_input_stops_the_sweep_before_any_trial(tmp_path):
    config = config_with_quick_inputs(
        tmp_path / "failing.py", "one", [{"seed": 0, "model.init_from": "weights.npz"}],
        "    return {'weights.npz': (workdir + '/made/weights.npz', "
        "['-c', 'import sys; sys.exit(3)'])}\n")
    sweep_dir = tmp_path / "sweep"
    proc = run_module("experiments.sweep", "--config", str(config), "--sweep", "one",
                      "--workdir", str(sweep_dir), "--quick")
    assert proc.returncode == 1
    assert proc.stderr.strip() == (
        "error: -c 'import sys; sys.exit(3)' failed (exit code 3), see "
        f"{sweep_dir}/made.log; no trial started")
    assert not list(sweep_dir.glob("*/log.txt"))


def test_quick_inputs_are_made_parallel_at_a_time(tmp_path):
    """With --parallel 2 the two quick inputs run side by side: each command waits for the
    other's marker file before writing its input (run one after the other, the first would
    wait in vain and fail)."""
    wait_for_the_other = (
        "import os, shutil, sys, time; mine, other, out, trunk = sys.argv[1:]; "
        "open(mine, 'w').close(); deadline = time.monotonic() + 120\n"
        "while not os.path.exists(other):\n"
        "    time.sleep(0.05)\n"
        "    if time.monotonic() > deadline: sys.exit(4)\n"
        "os.makedirs(os.path.dirname(out)); shutil.copy(trunk, out)")
    # What each command writes: the smoke net's trunk, which the sweep's check of start files
    # accepts for the quick trials (reference names, read with the torchvision convention).
    smoke = default.get_config("smoke").model
    arrays = pretrained.reference_arrays(models.build(smoke, 7, seed=0))
    trunk = tmp_path / "trunk.npz"
    np.savez(trunk, **{k: v for k, v in arrays.items() if not k.startswith(("score_", "up"))})
    start = {"seed": 0, "model.init_convention": "torchvision"}
    config = config_with_quick_inputs(
        tmp_path / "two_inputs.py", "two",
        [{**start, "model.init_from": "a.npz"}, {**start, "model.init_from": "b.npz"}],
        f"    code = {wait_for_the_other!r}\n"
        "    def made(name, other):\n"
        "        out = f'{workdir}/{name}/{name}.npz'\n"
        "        return out, ['-c', code, f'{workdir}/{name}.started', "
        f"f'{{workdir}}/{{other}}.started', out, {str(trunk)!r}]\n"
        "    return {'a.npz': made('a', 'b'), 'b.npz': made('b', 'a')}\n")
    sweep_dir = tmp_path / "sweep"
    proc = run_module("experiments.sweep", "--config", str(config), "--sweep", "two",
                      "--workdir", str(sweep_dir), "--quick", "--parallel", "2",
                      "--emit-commands", str(tmp_path / "commands.txt"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (sweep_dir / "a" / "a.npz").exists() and (sweep_dir / "b" / "b.npz").exists()
    assert proc.stdout.count("making ") == 2
