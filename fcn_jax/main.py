"""Command line: ``python -m fcn_jax.main --config configs/default.py --workdir DIR``.

``--mode train`` (default) trains and evaluates, resuming from the workdir's checkpoints;
``--mode eval`` scores the latest checkpoint. Override any config field with
``--config.a.b=value``; an unknown key is an error. Without ``--config``, the workdir's own
``config.json`` is used: ``--workdir W --mode eval`` scores W as it was trained, and
``--workdir W`` alone resumes it. ``--coordinator_address`` (with
``--num_processes`` and ``--process_id``) joins a multi-process run. Bad input stops with
one ``error:`` line (exit code 2); SIGTERM/SIGINT stops after saving a checkpoint (exit
code 75); see fcn_jax/cli.py.
"""

import json

from absl import flags, logging

from fcn_jax import backends, config_cli, distributed, evaluate, train

FLAGS = flags.FLAGS
flags.DEFINE_string("config", None, "Config file, e.g. configs/default.py:fcn8s; default: the "
                    "workdir's config.json. Override fields with --config.KEY=VALUE.")
flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and results.")
flags.DEFINE_enum("mode", "train", ["train", "eval"], "Train (and evaluate) or only evaluate.")
flags.DEFINE_string("coordinator_address", "",
                    "Multi-process runs: host:port of process 0, or 'auto' to read the cluster's "
                    "environment (SLURM, Open MPI, Cloud TPU); empty = one process.")
flags.DEFINE_integer("num_processes", 1, "Number of processes (with a host:port coordinator).")
flags.DEFINE_integer("process_id", 0, "This process's id in [0, num_processes).")
flags.mark_flags_as_required(["workdir"])


def main(argv):
    logging.set_verbosity(logging.WARNING)
    config = config_cli.resolve(FLAGS.config, argv,
                                lambda: config_cli.workdir_config(FLAGS.workdir))
    backends.start_devices(config.parallel.cpu_devices)
    distributed.initialize(FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id)
    if FLAGS.mode == "train":
        result = train.train_and_evaluate(config, FLAGS.workdir)
    else:
        result = evaluate.evaluate_checkpoint(config, FLAGS.workdir)
    summary = {k: result[k] for k in ("split", "step", "metrics", "majority_baseline")}
    print(json.dumps(summary, indent=2))


def run() -> None:
    """The ``fcn-train`` console script (pyproject.toml)."""
    config_cli.run_absl(main, __name__)


if __name__ == "__main__":
    run()
