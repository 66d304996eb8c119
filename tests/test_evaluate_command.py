"""The evaluation command (fcn_jax/evaluate.py): checkpoints and weight files scored with the
paper's four metrics, written as a Table 2-style table."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from fcn_jax import data, evaluate, train
from fcn_jax.data import pipeline
from tests import numpy_reference_fcn as ref
from tests.helpers import overridden_config, tiny_cli_overrides, tiny_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BGR_MEAN = np.array([104.00699, 116.66877, 122.67892])


def reference_metrics(hist: np.ndarray) -> dict:
    """The reference score.py's four metrics of a confusion histogram, in percent."""
    iu = np.diag(hist) / (hist.sum(1) + hist.sum(0) - np.diag(hist))
    freq = hist.sum(1) / hist.sum()
    with np.errstate(invalid="ignore"):
        return {"pixel_acc": 100 * np.diag(hist).sum() / hist.sum(),
                "mean_acc": 100 * np.nanmean(np.diag(hist) / hist.sum(1)),
                "mean_iu": 100 * np.nanmean(iu),
                "fw_iu": 100 * (freq[freq > 0] * iu[freq > 0]).sum()}


def test_released_weights_score_as_the_numpy_reference_net(tiny_data_dir, tmp_path):
    config = tiny_config("fcn8s")
    config.data.data_dir = tiny_data_dir
    config.model.caffe = True
    config.model.fc6_kernel = 7           # the release's VGG16 fc6
    config.parallel.num_devices = 1
    config.eval.batch_size = 1
    sd = ref.random_state_dict("fcn8s", 0, (4, 8, 16, 32, 32), 32, 7, bilinear=True)
    path = str(tmp_path / "fcn8s.npz")
    np.savez(path, **sd)
    got = evaluate.score_source(config, path)
    hist = np.zeros((7, 7), np.int64)
    source = data.build(config).split(config.data.eval_split)
    for index in range(len(source)):
        image, label = pipeline.decode(source[index])
        bgr = image[None, ..., ::-1].astype(np.float64) - BGR_MEAN
        pred = ref.forward(sd, bgr, "fcn8s")[0].argmax(-1)
        valid = label < 7
        hist += np.bincount(7 * label[valid].astype(int) + pred[valid],
                            minlength=49).reshape(7, 7)
    assert (hist.sum(0) > 0).sum() > 2  # the reference predicts several classes
    want = reference_metrics(hist)
    for key, value in got["metrics"].items():
        assert abs(value - want[key]) < 0.05, key


@pytest.mark.slow
def test_command_scores_a_checkpoint_into_the_table(tiny_data_dir, tmp_path):
    overrides = tiny_cli_overrides(2) | {"parallel.num_devices": 1}
    config = overridden_config("fcn32s", tiny_data_dir, overrides)
    train.train_and_evaluate(config, str(tmp_path / "run"))
    table_dir = tmp_path / "table"
    command = [sys.executable, "-m", "fcn_jax.evaluate", "--config", "configs/default.py:fcn32s",
               f"--config.data.data_dir={tiny_data_dir}", "--source", str(tmp_path / "run"),
               "--name", "FCN-32s tiny", "--table", str(table_dir)]
    command += [f"--config.{k}={v}" for k, v in overrides.items()]
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(table_dir / "results.json") as f:
        table = json.load(f)
    want = evaluate.evaluate_checkpoint(config, str(tmp_path / "run"))
    assert (table["split"], table["dataset"]) == ("validation", "fcn_shapes")
    [row] = table["rows"]
    assert (row["net"], row["step"], row["metrics"]) == ("FCN-32s tiny", 2, want["metrics"])
    lines = (table_dir / "results.md").read_text().splitlines()
    assert lines[2] == "| net | pixel acc | mean acc | mean IU | f.w. IU |"
    m = want["metrics"]
    assert lines[4] == (f"| FCN-32s tiny | {m['pixel_acc']:.2f} | {m['mean_acc']:.2f} | "
                        f"{m['mean_iu']:.2f} | {m['fw_iu']:.2f} |")


def test_rows_are_replaced_by_name_and_splits_never_mixed(tmp_path):
    def row(net, value):
        return {"net": net, "metrics": dict.fromkeys(evaluate.COLUMNS, value)}

    evaluate.add_row(str(tmp_path), row("FCN-32s", 1.0), "seg11valid", "voc_sbd")
    evaluate.add_row(str(tmp_path), row("FCN-16s", 2.0), "seg11valid", "voc_sbd")
    table = evaluate.add_row(str(tmp_path), row("FCN-32s", 3.0), "seg11valid", "voc_sbd")
    assert [(r["net"], r["metrics"]["mean_iu"]) for r in table["rows"]] == \
        [("FCN-32s", 3.0), ("FCN-16s", 2.0)]
    assert (tmp_path / "results.md").read_text().splitlines()[-2] == \
        "| FCN-32s | 3.00 | 3.00 | 3.00 | 3.00 |"
    with pytest.raises(ValueError, match="holds voc_sbd:seg11valid scores"):
        evaluate.add_row(str(tmp_path), row("FCN-8s", 1.0), "validation", "fcn_shapes")
