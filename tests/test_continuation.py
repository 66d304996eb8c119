"""``train.continue_from``: a run of N steps trained on to M in a new workdir is the M-step run
(parameters, optimiser state, logs and results equal to the bit), the N-step run is left as it
was, and a workdir that is not this config's shorter run is refused before anything is
written."""

import json
import os

import jax
import numpy as np
import pytest

from fcn_jax import train
from fcn_jax.checkpoint import Checkpointer
from fcn_jax.continuation import ContinuationError
from fcn_jax.run import Run
from fcn_jax.workdir import WorkdirInUse, WorkdirLock
from fcn_jax.writer import read_metrics
from tests.helpers import overridden_config, tiny_cli_overrides

NUM_STEPS, SHORT_STEPS = 8, 6  # 4 steps an epoch of the tiny split: it stops mid-epoch
TIMINGS = ("steps_per_sec", "first_step_seconds", "seconds")  # wall-clock: differ per run


def config(data_dir, num_steps=NUM_STEPS, **overrides):
    """The tiny run at a constant rate (the paper's fixed rate), evaluated every 3 steps."""
    return overridden_config("fcn32s", data_dir, {
        **tiny_cli_overrides(num_steps), "optim.schedule": "constant", "train.eval_every": 3,
        **overrides})


def contents(workdir) -> dict:
    """{relative path: bytes} of every file under ``workdir`` but the lock file."""
    found = {}
    for root, _, files in os.walk(workdir):
        for name in files:
            path = os.path.join(root, name)
            if name != ".lock":
                with open(path, "rb") as f:
                    found[os.path.relpath(path, workdir)] = f.read()
    return found


def read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def logs(workdir):
    return [{k: v for k, v in r.items() if k not in TIMINGS} for r in read_metrics(workdir)]


@pytest.fixture(scope="module")
def runs(tiny_data_dir, tmp_path_factory):
    """The uninterrupted 8-step run, and a 6-step one of the same config."""
    full, short = (str(tmp_path_factory.mktemp(name)) for name in ("full", "short"))
    train.train_and_evaluate(config(tiny_data_dir), full)
    train.train_and_evaluate(config(tiny_data_dir, SHORT_STEPS), short)
    return full, short


def test_a_continued_run_equals_the_longer_run_and_leaves_the_shorter_one_as_it_was(
        tiny_data_dir, runs, tmp_path):
    full, short = runs
    before = contents(short)
    train.train_and_evaluate(config(tiny_data_dir, **{"train.continue_from": short}),
                             str(tmp_path))
    template = Run(config(tiny_data_dir), full).state
    a = Checkpointer(full).restore(template)
    b = Checkpointer(str(tmp_path)).restore(template)
    assert int(a["step"]) == int(b["step"]) == NUM_STEPS
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(x, y)
    assert read_json(tmp_path / "results.json") == read_json(os.path.join(full, "results.json"))
    assert logs(str(tmp_path)) == logs(full)  # the short run's records, then its own
    assert [r["step"] for r in read_metrics(str(tmp_path)) if r["split"] == "eval"] == [3, 6, 8]
    assert contents(short) == before


@pytest.mark.parametrize("overrides, expected", [
    ({"optim.learning_rate": 0.01}, "optim.learning_rate: 0.003 in the workdir, 0.01 here"),
    ({"optim.schedule": "cosine"}, "optim.schedule='cosine' sets the rate of every step"),
    ({"train.num_steps": 5}, "stopped at step 6, past train.num_steps=5"),
])
def test_a_run_this_config_cannot_continue_is_refused_before_anything_is_written(
        tiny_data_dir, runs, tmp_path, overrides, expected):
    _, short = runs
    wrong = config(tiny_data_dir, **{"train.continue_from": short, **overrides})
    with pytest.raises(ContinuationError, match=expected.replace("(", r"\(")
                       .replace(")", r"\)")) as error:
        train.train_and_evaluate(wrong, str(tmp_path))
    assert "\n" not in str(error.value) and f"train.continue_from={short!r}" in str(error.value)
    assert not (tmp_path / "config.json").exists() and not (tmp_path / "metrics.jsonl").exists()


def test_a_run_still_training_is_refused(tiny_data_dir, runs, tmp_path):
    _, short = runs
    with WorkdirLock(short), pytest.raises(WorkdirInUse, match="is in use by pid"):
        train.train_and_evaluate(config(tiny_data_dir, **{"train.continue_from": short}),
                                 str(tmp_path))
    assert not (tmp_path / "config.json").exists()


def test_a_directory_that_holds_no_run_is_named(tiny_data_dir, tmp_path):
    missing = str(tmp_path / "no-such-run")
    with pytest.raises(ContinuationError, match="no config.json"):
        train.train_and_evaluate(config(tiny_data_dir, **{"train.continue_from": missing}),
                                 str(tmp_path / "new"))
