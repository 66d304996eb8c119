"""Run logs a person (and any JSON parser) can read: undefined values are null, never NaN;
accuracies and IU in percent, as in results.json, also when read from an older log."""

import json
import math
import subprocess
import sys

import numpy as np

from fcn_jax.workdir import finite_or_null, write_json
from fcn_jax.writer import MetricWriter, read_metrics


def strict_load(text: str):
    """json.loads that refuses NaN and Infinity, as strict parsers (JavaScript, jq) do."""
    def refuse(constant):
        raise ValueError(f"non-standard JSON constant {constant}")
    return json.loads(text, parse_constant=refuse)


def test_undefined_values_are_null_in_metrics_jsonl_and_left_out_of_tensorboard(tmp_path):
    writer = MetricWriter(str(tmp_path))
    writer.write(3, "eval", {"mean_iu": np.float32(0.25), "boundary_precision": float("nan"),
                             "class_iu": np.array([0.5, np.nan, np.inf]), "rate": None})
    writer.close()
    (line,) = (tmp_path / "metrics.jsonl").read_text().splitlines()
    record = strict_load(line)
    assert record == {"step": 3, "split": "eval", "units": "percent", "mean_iu": 25.0,
                      "boundary_precision": None, "class_iu": [0.5, None, None], "rate": None}
    assert read_metrics(str(tmp_path)) == [record]
    events = b"".join(p.read_bytes() for p in (tmp_path / "tensorboard").iterdir())
    assert b"eval/mean_iu" in events and b"eval/boundary_precision" not in events


def test_results_files_are_strict_json(tmp_path):
    path = tmp_path / "results.json"
    write_json(str(path), {"metrics": {"mean_iu": 12.5, "mean_acc": float("nan")},
                           "per_class": (1.0, float("-inf")), "step": 7})
    assert strict_load(path.read_text()) == {"metrics": {"mean_iu": 12.5, "mean_acc": None},
                                              "per_class": [1.0, None], "step": 7}
    assert finite_or_null([math.inf, "text", None, 2]) == [None, "text", None, 2]


def test_fractions_are_logged_in_percent_and_older_logs_read_in_percent(tmp_path):
    writer = MetricWriter(str(tmp_path))
    writer.write(5, "train", {"loss": 0.7, "pixel_acc": 0.5, "mean_iu": 0.125,
                              "learning_rate": 0.01, "steps_per_sec": 3.0})
    writer.write(5, "eval", {"per_class_iu": [0.25, float("nan")], "boundary_f": 0.5,
                             "seconds": 2.0})
    writer.close()
    train, evaluation = (strict_load(line) for line in
                         (tmp_path / "metrics.jsonl").read_text().splitlines())
    assert train == {"step": 5, "split": "train", "units": "percent", "loss": 0.7,
                     "pixel_acc": 50.0, "mean_iu": 12.5, "learning_rate": 0.01,
                     "steps_per_sec": 3.0}
    assert evaluation["per_class_iu"] == [25.0, None] and evaluation["boundary_f"] == 50.0
    older = tmp_path / "older"
    older.mkdir()
    (older / "metrics.jsonl").write_text(  # a log of the fraction era: no "units"
        '{"step": 5, "split": "eval", "mean_iu": 0.125, "per_class_iu": [0.5, null], '
        '"loss": 0.7}\n')
    assert read_metrics(str(older)) == [{"step": 5, "split": "eval", "mean_iu": 12.5,
                                         "per_class_iu": [50.0, None], "loss": 0.7,
                                         "units": "percent"}]
    assert read_metrics(str(tmp_path))[0] == train  # a new log is read as written


def test_the_writer_leaves_torch_unimported_and_importable():
    """tensorboardX's import-time ``import torch`` (1-2 s per process) is kept out; torch,
    where installed, still imports afterwards."""
    code = ("import sys, importlib.util; import fcn_jax.writer; "
            "assert 'torch' not in sys.modules, 'torch imported'; "
            "assert importlib.util.find_spec('torch') is None or "
            "__import__('torch').ones(2).sum().item() == 2.0")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
