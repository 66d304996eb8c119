"""Command line: check a weight file against a config's model, optionally re-save it as .npz.

``python -m fcn_jax.import_weights --config configs/voc.py:fcn32s --weights vgg16.pth
[--npz vgg16.npz]`` loads the file into the model the config describes (fcn_jax/models/pretrained.py:
layouts, net surgery, input convention), prints what was loaded, dropped and left at its
initialisation, or the list of mismatches. ``--npz`` writes the file's arrays unchanged, so a
.pth needs torch once and never again. Training then starts from it with
``--config.model.init_from=vgg16.npz``.
"""

import os

import numpy as np
from absl import flags

from fcn_jax import config_cli, models
from fcn_jax.models import pretrained

FLAGS = flags.FLAGS


def define_flags() -> None:
    """The command's flags (defined only when run, so importing this module defines none)."""
    flags.DEFINE_string("config", None, "Config file, e.g. configs/voc.py:fcn32s; override "
                        "fields with --config.KEY=VALUE.")
    flags.DEFINE_string("weights", None, ".npz, .safetensors or .pth/.pt (with torch) file.")
    flags.DEFINE_integer("num_classes", 21, "Classes of the model's score layers (VOC: 21).")
    flags.DEFINE_string("npz", "", "Also write the file's arrays to this .npz.")
    flags.mark_flags_as_required(["config", "weights"])


def main(argv):
    config = config_cli.resolve(FLAGS.config, argv)
    model = models.build(config.model, FLAGS.num_classes, seed=0)
    arrays = pretrained.read_arrays(FLAGS.weights)
    report = pretrained.load_reference(model, arrays, convention=config.model.init_convention,
                                    source=FLAGS.weights)
    for key, value in report.items():
        print(f"{key}: {value if isinstance(value, str) else ', '.join(value) or '-'}")
    if FLAGS.npz:
        os.makedirs(os.path.dirname(os.path.abspath(FLAGS.npz)), exist_ok=True)
        np.savez(FLAGS.npz, **arrays)
        print(f"wrote {FLAGS.npz}")


if __name__ == "__main__":
    define_flags()
    config_cli.run_absl(main, __name__)
