"""Look at a dataset before training on it: the first examples of a split, each image beside
its colour-coded labels, with a legend of the class names.

    python -m fcn_jax.data.browse --config configs/default.py --split validation --count 6 \\
        --output browse.png

Any dataset a config names (``--config.data.name=folder --config.data.folder=DIR`` for your
own); the dataset is prepared first if needed. An existing ``--output`` is never replaced
unless ``--overwrite``.
"""

import os

import numpy as np
from absl import flags

from fcn_jax import config_cli, data, viz

FLAGS = flags.FLAGS


def define_flags() -> None:
    """The command's flags (defined only when run, so importing this module defines none)."""
    flags.DEFINE_string("config", "configs/default.py", "Config file; override fields with "
                        "--config.KEY=VALUE (e.g. --config.data.name=folder).")
    flags.DEFINE_string("split", None, "The split to show (default: config.data.train_split).")
    flags.DEFINE_integer("count", 6, "How many examples, from the first.")
    flags.DEFINE_string("output", None, "The PNG to write.")
    flags.DEFINE_bool("overwrite", False, "Replace an existing --output.")
    flags.mark_flags_as_required(["output"])


def render(config, split: str, count: int, output: str) -> int:
    """Draw the first ``count`` examples of ``split`` into ``output``; how many were drawn."""
    if count < 1:
        raise ValueError(f"--count {count}: expected at least 1")
    dataset = data.build(config)
    source = dataset.split(split)
    examples = [source[i] for i in range(min(count, len(source)))]
    labels = [np.asarray(e["label"]) for e in examples]
    viz.save_prediction_grid(output, [np.asarray(e["image"]) for e in examples], labels, {},
                             dataset.num_classes, class_names=list(dataset.class_names))
    return len(examples)


def main(argv):
    config = config_cli.resolve(FLAGS.config, argv)
    split = FLAGS.split or config.data.train_split
    if os.path.exists(FLAGS.output) and not FLAGS.overwrite:
        raise FileExistsError(f"{FLAGS.output} exists; choose another --output or pass "
                              "--overwrite")
    drawn = render(config, split, FLAGS.count, FLAGS.output)
    print(f"{config.data.name} {split}: {drawn} examples drawn to {FLAGS.output}")


if __name__ == "__main__":
    define_flags()
    config_cli.run_absl(main, __name__)
