"""Scoring: a checkpoint or a weight file into the paper's metrics (FCN paper, section 5: the
four metrics; the layout of Table 2); ``results.json`` of a run (``finish``); and the command
that adds a score as a row of a results table.

    python -m fcn_jax.evaluate --config configs/voc.py:fcn8s --source workdirs/voc/fcn8s \\
        --name FCN-8s --table results/voc

``--source`` is a training workdir (its latest checkpoint is scored; without ``--config``,
with the config it was trained with, from its config.json) or a weight file
(fcn_jax/models/pretrained.py, e.g. released FCN weights; ``--config`` required). Fields can be
overridden with ``--config.KEY=VALUE``. The row ``--name`` is added to, or replaced
in, ``TABLE/results.json`` and ``TABLE/results.md`` (net | pixel acc | mean acc | mean IU |
f.w. IU, in percent, on ``config.data.eval_split``: seg11valid for configs/voc.py).
"""

import json
import os

from absl import flags, logging

import ml_collections
import numpy as np

from fcn_jax import config_cli, metrics
from fcn_jax.run import Run, restore_latest
from fcn_jax.workdir import ensure_writable, write_json, write_text

COLUMNS = dict(metrics.PAPER_METRICS)


def summary(result: dict) -> dict:
    """The four paper metrics of a metrics dict, as percentages."""
    return {k: round(100 * result[k], 2) for k, _ in metrics.PAPER_METRICS}


def finish(config: ml_collections.ConfigDict, workdir: str, result: dict, is_chief: bool) -> dict:
    """Write ``results.json`` with the final metrics beside the majority-class baseline."""
    payload = {"split": config.data.eval_split, "step": config.train.num_steps,
               **report(result), "per_class_iu": result["per_class_iu"],
               "confusion": result["confusion"]}
    if is_chief:
        write_json(os.path.join(workdir, "results.json"), payload)
    return payload


def report(result: dict) -> dict:
    """The paper metrics, boundary F and the majority-class baseline of an evaluation."""
    return {"metrics": summary(result), "boundary_f": round(100 * result["boundary_f"], 2),
            "majority_baseline": summary(metrics.majority_baseline(np.asarray(result["confusion"])))}


def evaluate_checkpoint(config: ml_collections.ConfigDict, workdir: str) -> dict:
    """Score the latest checkpoint of ``workdir`` on ``config.data.eval_split``."""
    run, state = restore_latest(config, workdir)
    return score(run, state["params"], int(state["step"]))


def evaluate_weights(config: ml_collections.ConfigDict, path: str) -> dict:
    """Score a weight file (fcn_jax/models/pretrained.py: VGG16 or released FCN weights) on
    ``config.data.eval_split``; nothing is written."""
    run = Run(config, "", init_from=path)
    return score(run, run.state["params"], None)


def score(run: Run, host_params, step: int | None) -> dict:
    """The four paper metrics, boundary F and the majority baseline of ``host_params``."""
    split = run.config.data.eval_split
    result = run.evaluate(run.parallel.put_replicated(host_params), split)
    return {"split": split, "step": step, **report(result)}


def score_source(config, source: str) -> dict:
    """Metrics of a workdir's latest checkpoint or of a weight file."""
    if not os.path.exists(source):
        raise FileNotFoundError(f"--source {source}: no such training workdir or weight file")
    if os.path.isdir(source):
        return evaluate_checkpoint(config, source)
    return evaluate_weights(config, source)


def markdown(table: dict) -> str:
    """The table in Table 2's layout, rows in the order they were first added."""
    lines = [f"Scored on `{table['split']}` ({table['dataset']}); percent.", "",
             "| net | " + " | ".join(COLUMNS.values()) + " |",
             "|---" * (len(COLUMNS) + 1) + "|"]
    lines += ["| " + " | ".join([row["net"]] + [f"{row['metrics'][k]:.2f}" for k in COLUMNS])
              + " |" for row in table["rows"]]
    return "\n".join(lines) + "\n"


def add_row(table_dir: str, row: dict, split: str, dataset: str) -> dict:
    """Add ``row`` to (or replace its net's row in) the table; write the .json and the .md."""
    path = os.path.join(table_dir, "results.json")
    table = {"split": split, "dataset": dataset, "rows": []}
    if os.path.exists(path):
        with open(path) as f:
            table = json.load(f)
        if (table["split"], table["dataset"]) != (split, dataset):
            raise ValueError(f"{path} holds {table['dataset']}:{table['split']} scores; this "
                             f"config scores {dataset}:{split}: use another --table")
    names = [r["net"] for r in table["rows"]]
    if row["net"] in names:
        table["rows"][names.index(row["net"])] = row
    else:
        table["rows"].append(row)
    write_json(path, table)
    write_text(os.path.join(table_dir, "results.md"), markdown(table))
    return table


FLAGS = flags.FLAGS


def define_flags() -> None:
    """The command's flags (defined only when run, so importing this module defines none)."""
    flags.DEFINE_string("config", None, "Config file, e.g. configs/voc.py:fcn8s; default: the "
                        "--source workdir's config.json.")
    flags.DEFINE_string("source", None, "A training workdir or a weight file to score.")
    flags.DEFINE_string("name", None, "The row's name in the table, e.g. FCN-8s.")
    flags.DEFINE_string("table", None, "Directory of results.json and results.md.")
    flags.mark_flags_as_required(["source", "name", "table"])


def main(argv):
    logging.set_verbosity(logging.WARNING)
    config = config_cli.resolve(FLAGS.config, argv,
                                lambda: config_cli.workdir_config(FLAGS.source, "--source"))
    ensure_writable(FLAGS.table)
    result = score_source(config, FLAGS.source)
    row = {"net": FLAGS.name, "source": os.path.abspath(FLAGS.source), "step": result["step"],
           "metrics": result["metrics"], "majority_baseline": result["majority_baseline"]}
    table = add_row(FLAGS.table, row, config.data.eval_split, config.data.name)
    print(markdown(table))


def run() -> None:
    """The ``fcn-evaluate`` console script (pyproject.toml)."""
    define_flags()
    config_cli.run_absl(main, __name__)


if __name__ == "__main__":
    run()
