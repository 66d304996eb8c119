"""Command line: score a checkpoint or a weight file and add it as a row of a results table
(FCN paper, section 5: the four metrics; the layout of Table 2).

    python -m fcn_jax.evaluate --config configs/voc.py:fcn8s --source workdirs/voc/fcn8s \\
        --name FCN-8s --table results/voc

``--source`` is a training workdir (its latest checkpoint is scored; without ``--config``,
with the config it was trained with, from its config.json) or a weight file
(fcn_jax/weights.py, e.g. released FCN weights; ``--config`` required). Fields can be
overridden with ``--config.KEY=VALUE``. The row ``--name`` is added to, or replaced
in, ``TABLE/results.json`` and ``TABLE/results.md`` (net | pixel acc | mean acc | mean IU |
f.w. IU, in percent, on ``config.data.eval_split``: seg11valid for configs/voc.py).
"""

import json
import os

from absl import flags, logging

from fcn_jax import config_cli, metrics, train
from fcn_jax.workdir import ensure_writable, write_json, write_text

COLUMNS = dict(metrics.PAPER_METRICS)


def score_source(config, source: str) -> dict:
    """Metrics of a workdir's latest checkpoint or of a weight file."""
    if not os.path.exists(source):
        raise FileNotFoundError(f"--source {source}: no such training workdir or weight file")
    if os.path.isdir(source):
        return train.evaluate_checkpoint(config, source)
    return train.evaluate_weights(config, source)


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
