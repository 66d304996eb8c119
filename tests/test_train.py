"""End to end: a short run learns, and a resumed run equals an uninterrupted one."""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from fcn_jax import evaluate, run, train
from fcn_jax.checkpoint import Checkpointer
from fcn_jax.writer import read_metrics
from tests.helpers import tiny_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def learning_config(data_dir: str, num_steps: int):
    """Tiny FCN-8s that fits the 16 tiny training images; scored on the training split."""
    c = tiny_config("fcn8s")
    c.data.data_dir = data_dir
    c.data.eval_split = "train"
    c.data.scale_range = (1.0, 1.0)
    c.model.width = 0.125
    c.model.fc_channels = 64
    c.model.dropout_rate = 0.0
    c.optim.learning_rate = 3e-3
    c.optim.weight_decay = 0.0
    c.optim.schedule = "constant"
    c.train.num_steps = num_steps
    c.train.log_every = 10
    c.train.eval_every = num_steps
    c.train.checkpoint_every = num_steps
    c.train.num_overlays = 2
    return c


def test_short_training_run_lowers_loss_and_raises_mean_iu(tiny_data_dir, tmp_path):
    config = learning_config(tiny_data_dir, 120)
    result = train.train_and_evaluate(config, str(tmp_path))
    logs = [r for r in read_metrics(str(tmp_path)) if r["split"] == "train"]
    assert logs[-1]["loss"] < 0.8 * logs[0]["loss"]
    # An untrained FCN (zero score layers) predicts class 0 everywhere: the majority baseline.
    assert result["metrics"]["mean_iu"] > result["majority_baseline"]["mean_iu"] + 10
    for name in ("results.json", "config.json", "metrics.jsonl"):
        assert os.path.exists(tmp_path / name)
    assert os.listdir(tmp_path / "overlays") == ["step_000120.png"]
    events = b"".join(p.read_bytes() for p in (tmp_path / "tensorboard").iterdir())
    assert b"eval/overlays" in events and b"train/loss" in events   # the overlays as an image
    first = logs[0]
    assert first["first_step_seconds"] > 0 and "seconds" in read_metrics(str(tmp_path))[-1]


def resume_config(data_dir: str, num_steps: int, mode: str):
    c = tiny_config("fcn16s")
    c.data.data_dir = data_dir
    c.parallel.mode = mode
    c.optim.schedule = "constant"
    c.train.num_steps = num_steps
    c.train.log_every = 2
    c.train.eval_every = 100
    c.train.checkpoint_every = 3
    c.train.num_overlays = 0
    return c


@pytest.mark.parametrize("mode", ["mesh", "pmap"])
def test_resume_continues_at_the_saved_step_with_identical_state(tiny_data_dir, tmp_path, mode):
    straight, resumed = str(tmp_path / "straight"), str(tmp_path / "resumed")
    train.train_and_evaluate(resume_config(tiny_data_dir, 6, mode), straight)
    train.train_and_evaluate(resume_config(tiny_data_dir, 3, mode), resumed)
    assert Checkpointer(resumed).latest_step() == 3
    train.train_and_evaluate(resume_config(tiny_data_dir, 6, mode), resumed)
    template = run.Run(resume_config(tiny_data_dir, 6, mode), straight).state
    a = Checkpointer(straight).restore(template)
    b = Checkpointer(resumed).restore(template)
    assert int(a["step"]) == int(b["step"]) == 6
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(x, y)
    steps = [r["step"] for r in read_metrics(resumed) if r["split"] == "train"]
    assert steps == [2, 3, 4, 6]  # logs at every 2nd step and at the end of each run
    losses_a = [r["loss"] for r in read_metrics(straight) if r["split"] == "train"]
    losses_b = [r["loss"] for r in read_metrics(resumed) if r["split"] == "train"]
    np.testing.assert_allclose(losses_a[-1], losses_b[-1], rtol=1e-6)


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "fcn_jax.main", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, JAX_PLATFORMS="cpu"))


def test_cli_rejects_an_unknown_config_key(tmp_path):
    proc = run_cli("--config", "configs/default.py", "--workdir", str(tmp_path),
                   "--config.model.widht=0.5")
    assert proc.returncode != 0
    assert "widht" in proc.stderr
    assert not os.listdir(tmp_path)


@pytest.mark.slow
def test_cli_trains_then_evaluates_a_checkpoint(tiny_data_dir, tmp_path):
    common = ["--config", "configs/default.py:fcn32s", "--workdir", str(tmp_path),
              f"--config.data.data_dir={tiny_data_dir}", "--config.data.builder_config=tiny",
              "--config.data.crop_size=32", "--config.model.width=0.0625",
              "--config.model.fc_channels=16", "--config.train.batch_size=4",
              "--config.eval.batch_size=4", "--config.train.num_steps=2",
              "--config.train.num_overlays=0"]
    proc = run_cli(*common)
    assert proc.returncode == 0, proc.stderr[-2000:]
    trained = json.loads((tmp_path / "results.json").read_text())
    proc = run_cli(*common, "--mode", "eval")
    assert proc.returncode == 0, proc.stderr[-2000:]
    evaluated = json.loads(proc.stdout[proc.stdout.index("{"):])
    assert evaluated["step"] == 2
    assert evaluated["metrics"] == trained["metrics"]
    # Flip and tiled evaluation are selected by config; tiles of the padded size = whole image.
    proc = run_cli(*common, "--mode", "eval", "--config.eval.flip=True",
                   "--config.eval.tile_size=96")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout[proc.stdout.index("{"):])["step"] == 2


@pytest.mark.slow
def test_a_workdir_alone_evaluates_and_resumes_with_its_own_config(tiny_data_dir, tmp_path):
    """--workdir W without --config: W's config.json, so no override is typed twice."""
    common = ["--workdir", str(tmp_path), f"--config.data.data_dir={tiny_data_dir}",
              "--config.data.builder_config=tiny", "--config.data.crop_size=32",
              "--config.model.width=0.0625", "--config.model.fc_channels=16",
              "--config.train.batch_size=4", "--config.eval.batch_size=4",
              "--config.train.num_overlays=0", "--config.train.checkpoint_every=2"]
    proc = run_cli("--config", "configs/default.py:fcn32s", *common,
                   "--config.train.num_steps=2")
    assert proc.returncode == 0, proc.stderr[-2000:]
    trained = json.loads((tmp_path / "results.json").read_text())
    proc = run_cli("--workdir", str(tmp_path), "--mode", "eval")
    assert proc.returncode == 0, proc.stderr[-2000:]
    evaluated = json.loads(proc.stdout[proc.stdout.index("{"):])
    assert evaluated["step"] == 2 and evaluated["metrics"] == trained["metrics"]
    proc = run_cli("--workdir", str(tmp_path))  # finished: scored again, nothing retrained
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout[proc.stdout.index("{"):])["step"] == 2
    proc = run_cli("--workdir", str(tmp_path / "new"), "--mode", "eval")
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        f"error: --workdir {tmp_path / 'new'} holds no config.json (not a training workdir, or "
        "no run has started there): pass --config, e.g. --config configs/default.py")


def test_zero_steps_scores_the_starting_weights(trained_fcn8s, tmp_path):
    """``train.num_steps=0`` with ``model.init_from``: no step, the starting weights scored
    (e.g. a trained net stitched at inference); the same metrics as scoring that workdir."""
    config, trained = trained_fcn8s
    zero = config.copy_and_resolve_references()
    zero.train.num_steps, zero.model.init_from = 0, trained
    result = train.train_and_evaluate(zero, str(tmp_path))
    assert result["metrics"] == evaluate.evaluate_checkpoint(config, trained)["metrics"]
    assert json.loads((tmp_path / "results.json").read_text())["metrics"] == result["metrics"]
    assert not [r for r in read_metrics(str(tmp_path)) if r["split"] == "train"]
