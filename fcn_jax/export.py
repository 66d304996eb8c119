"""Export a trained FCN for use outside this project: its weights in the reference layout and
its forward pass as a serialized ``jax.export`` module of any image size (FCN paper, section 3:
one net for every input size).

    python -m fcn_jax.export --workdir workdirs/default --out exported/

``--workdir``: a training workdir (its config.json and latest checkpoint). ``--out`` gets:

- ``weights.npz`` and ``weights.safetensors``: every variable under its reference name
  (conv1_1.weight ... score_fr.weight, upscore8.weight; kernels OIHW, upsampling kernels in
  Caffe's Deconvolution layout), which ``model.init_from`` and ``fcn_jax.import_weights`` read
  back into the same net (with ``model.init_convention`` as export.json says);
- ``model.jax``: ``jax.export`` serialization of uint8 RGB images [batch, height, width, 3]
  -> float32 logits [batch, height, width, classes], batch and size symbolic: height and
  width multiples of 32 (32k + 26 for a ``model.caffe`` net, whose ceil-mode pools after the
  100-pixel padding divide exactly only then; pad other images up); load it with
  ``jax.export.deserialize(open(path, "rb").read()).call(images)``;
- ``export.json``: the net, its classes, the input convention and the checkpoint's step.

Existing files in ``--out`` are never replaced unless ``--overwrite``.
"""

import argparse
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from safetensors.numpy import save_file

from fcn_jax import cli, config_cli
from fcn_jax.models import pretrained
from fcn_jax.models.vgg import TRUNK_STRIDE
from fcn_jax.predict import class_names, trained_model
from fcn_jax.workdir import write_json

FILES = ("weights.npz", "weights.safetensors", "model.jax", "export.json")
CAFFE_OFFSET = -198 % TRUNK_STRIDE   # 26: size + 198 is then a multiple of 32


def input_sizes(caffe: bool) -> str:
    """The heights and widths the exported module takes, as a symbolic expression: multiples
    of the trunk's stride, or for the Caffe layout (100 pixels of padding before conv1_1, so
    the feature map is ``size + 198`` before ceil-mode pooling) sizes that pool exactly."""
    return f"{TRUNK_STRIDE}*{{0}} + {CAFFE_OFFSET}" if caffe else f"{TRUNK_STRIDE}*{{0}}"


def input_shape(caffe: bool):
    """The exported module's symbolic input shape [b, height, width, 3]."""
    size = input_sizes(caffe)
    return (*jax.export.symbolic_shape(f"b, {size.format('h')}, {size.format('w')}"), 3)


def serialize_forward(model: nnx.Module, caffe: bool) -> bytes:
    """The net's logits function, exported with symbolic batch, height and width."""
    graphdef, params, constants = nnx.split(model, nnx.Param, ...)

    def logits(images):
        return nnx.merge(graphdef, params, constants)(images)

    exported = jax.export.export(jax.jit(logits))(
        jax.ShapeDtypeStruct(input_shape(caffe), jnp.uint8))
    return bytes(exported.serialize())


def export_workdir(workdir: str, out: str, overwrite: bool = False) -> dict:
    """Write the files of ``FILES`` into ``out``; returns the export.json record."""
    existing = [f for f in FILES if os.path.exists(os.path.join(out, f))]
    if existing and not overwrite:
        raise FileExistsError(f"{os.path.join(out, existing[0])} exists; choose another --out "
                              "or pass --overwrite")
    config = config_cli.workdir_config(workdir, has_config_flag=False)
    model, num_classes, step = trained_model(workdir, config)
    arrays = pretrained.reference_arrays(model)
    record = {"source": os.path.abspath(workdir), "step": int(step),
              "variant": config.model.variant, "caffe_layout": bool(config.model.caffe),
              "decoder": config.model.decoder, "num_classes": num_classes,
              "class_names": list(class_names(workdir, num_classes)),
              "init_convention": "caffe" if config.model.caffe else "torchvision",
              "input": ("uint8 RGB [batch, height, width, 3], height and width of the form "
                        + input_sizes(bool(config.model.caffe)).format("k")),
              "output": f"float32 logits [batch, height, width, {num_classes}]"}
    blob = serialize_forward(model, bool(config.model.caffe))
    os.makedirs(out, exist_ok=True)
    np.savez(os.path.join(out, "weights.npz"), **arrays)
    save_file(arrays, os.path.join(out, "weights.safetensors"),
              metadata={"init_convention": record["init_convention"]})
    with open(os.path.join(out, "model.jax"), "wb") as f:
        f.write(blob)
    write_json(os.path.join(out, "export.json"), record)
    return record


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m fcn_jax.export",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True, help="a training workdir")
    parser.add_argument("--out", required=True, help="directory for the exported files")
    parser.add_argument("--overwrite", action="store_true", help="replace existing files")
    return parser.parse_args(argv)


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    record = export_workdir(args.workdir, args.out, args.overwrite)
    print(f"exported {record['variant']} (step {record['step']}, {record['num_classes']} "
          f"classes) to {args.out}: {', '.join(FILES)}")


def run() -> None:
    """The ``fcn-export`` console script (pyproject.toml)."""
    cli.guarded(main)(sys.argv[1:])


if __name__ == "__main__":
    run()
