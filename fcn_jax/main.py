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
import os

from absl import app, flags, logging
from ml_collections import config_flags

from configs import default
from fcn_jax import cli, distributed, parallel, train
from fcn_jax.workdir import read_config

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Config file, e.g. configs/default.py:fcn8s; "
                                "default: the workdir's config.json.", lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and results.")
flags.DEFINE_enum("mode", "train", ["train", "eval"], "Train (and evaluate) or only evaluate.")
flags.DEFINE_string("coordinator_address", "",
                    "Multi-process runs: host:port of process 0, or 'auto' to read the cluster's "
                    "environment (SLURM, Open MPI, Cloud TPU); empty = one process.")
flags.DEFINE_integer("num_processes", 1, "Number of processes (with a host:port coordinator).")
flags.DEFINE_integer("process_id", 0, "This process's id in [0, num_processes).")
flags.mark_flags_as_required(["workdir"])


def saved_config(workdir: str):
    """The config a run wrote into ``workdir``; a workdir without one needs ``--config``."""
    if not os.path.isfile(os.path.join(workdir, "config.json")):
        raise FileNotFoundError(f"--workdir {workdir} holds no config.json (no run has started "
                                "there): pass --config, e.g. --config configs/default.py")
    return read_config(workdir, default.get_config())


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.WARNING)
    config = FLAGS.config or saved_config(FLAGS.workdir)
    parallel.start_cpu_devices(config.parallel.cpu_devices)
    distributed.initialize(FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id)
    if FLAGS.mode == "train":
        result = train.train_and_evaluate(config, FLAGS.workdir)
    else:
        result = train.evaluate_checkpoint(config, FLAGS.workdir)
    summary = {k: result[k] for k in ("split", "step", "metrics", "majority_baseline")}
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    app.run(cli.guarded(main))
