"""Label your own images with a trained FCN (FCN paper, section 3: a net of any input size
gives a dense prediction of that size).

    python -m fcn_jax.predict --workdir workdirs/default --input photos/ --output labelled/

``--workdir``: a training workdir; its ``config.json`` says which net, its latest checkpoint
gives the weights, its ``classes.json`` the class names (written by training), so no dataset is
built. ``--input``: image files, directories (their .png/.jpg/.jpeg/.bmp files) or glob
patterns, of any size. For each image ``NAME``, ``--output`` gets ``NAME_mask.png`` (the
predicted classes in the palette of the training overlays), ``NAME_overlay.png`` (the mask
blended over the image) and, with ``--raw``, ``NAME_label.png`` (class indices as grey
levels); plus one ``legend.png`` (colour and name of each class). ``--flip``, ``--scales`` and
``--tile`` override the workdir's ``eval`` settings (mirror averaging, multi-scale, tiled
sliding window). Every input is checked before the first prediction; files already in
``--output`` are never replaced unless ``--overwrite``, inputs never.
"""

import argparse
import functools
import glob
import json
import os
import sys

import jax
import numpy as np
from flax import nnx
from PIL import Image, ImageDraw, UnidentifiedImageError

from fcn_jax import backends, cli, config_checks, config_cli, models, steps, viz
from fcn_jax.data import augment, pipeline
from fcn_jax.inference import InferenceOptions
from fcn_jax.models import pretrained
from fcn_jax.models.vgg import TRUNK_STRIDE

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp")
CLASSES_FILE = "classes.json"


def class_names(workdir: str, num_classes: int) -> tuple[str, ...]:
    """The training data's class names (``classes.json``), else ``class 0``, ``class 1``..."""
    path = os.path.join(workdir, CLASSES_FILE)
    if not os.path.isfile(path):
        return tuple(f"class {i}" for i in range(num_classes))
    with open(path, encoding="utf-8") as f:
        names = tuple(json.load(f)["class_names"])
    if len(names) != num_classes:
        raise ValueError(f"{path} names {len(names)} classes; the checkpoint scores "
                         f"{num_classes}")
    return names


def input_files(specs: list[str]) -> list[str]:
    """Every image a spec names: a file, a directory's image files, or a glob's matches."""
    files = []
    for spec in specs:
        if os.path.isdir(spec):
            found = sorted(os.path.join(spec, name) for name in os.listdir(spec)
                           if name.lower().endswith(IMAGE_EXTENSIONS))
        elif os.path.isfile(spec):
            found = [spec]
        else:
            found = sorted(p for p in glob.glob(spec) if os.path.isfile(p))
        if not found:
            raise FileNotFoundError(f"--input {spec}: no such image file, no image in that "
                                    f"directory ({', '.join(IMAGE_EXTENSIONS)}) or no match")
        files += found
    files = list(dict.fromkeys(os.path.realpath(path) for path in files))
    stems = {}
    for path in files:
        stem = os.path.splitext(os.path.basename(path))[0]
        if stems.setdefault(stem, path) != path:
            raise ValueError(f"--input: {stems[stem]} and {path} would both write {stem}_*.png; "
                             "label them into different --output directories")
    return files


def read_image(path: str, check_only: bool = False) -> np.ndarray | None:
    """An image file as uint8 RGB [H, W, 3] (``check_only``: just checked); an unreadable one
    is an error naming it."""
    try:
        with Image.open(path) as image:
            if check_only:
                image.verify()
                return None
            return np.asarray(image.convert("RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise ValueError(f"{path}: not a readable image ({error})") from None


def trained_model(workdir: str, config) -> tuple[nnx.Module, int, int]:
    """The net ``config`` describes with the latest checkpoint of ``workdir`` loaded; the
    number of classes (read from its score layer) and the checkpoint's step."""
    arrays, step = pretrained.read_checkpoint_params(workdir)
    num_classes = int(arrays["score_fr.bias"].shape[0])
    model = models.build(config.model, num_classes, config.seed)
    pretrained.load_previous_stage(model, arrays, workdir)
    return model, num_classes, step


class Predictor:
    """A workdir's net and weights, labelling one image at a time at its own size."""

    def __init__(self, workdir: str, options: dict):
        self.config = config_cli.workdir_config(workdir, has_config_flag=False)
        self.config.eval.update({k: v for k, v in options.items() if v is not None})
        config_checks.validate(self.config)
        model, self.num_classes, _ = trained_model(workdir, self.config)
        self.class_names = class_names(workdir, self.num_classes)
        graphdef, self.params, constants = nnx.split(model, nnx.Param, ...)
        inference = InferenceOptions.from_config(self.config.eval, augment.PAD_RGB)
        self.stride = 1 if self.config.model.caffe else TRUNK_STRIDE
        self.predict = jax.jit(functools.partial(steps.predict, graphdef=graphdef,
                                                 constants=constants, options=inference),
                               compiler_options=backends.compiler_options())

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """Class indices [H, W] of a uint8 RGB image [H, W, 3]."""
        height, width = image.shape[:2]
        label = np.zeros((height, width), np.uint8)
        batch = pipeline.pad_batch([(image, label)], self.stride, 1)
        return np.asarray(self.predict(self.params, batch["image"]))[0, :height, :width]


def legend(names: tuple[str, ...], num_classes: int) -> Image.Image:
    """One row per class: its colour swatch and its name."""
    row, colours = 18, viz.palette(num_classes)
    canvas = Image.new("RGB", (220, row * len(names) + 4), "white")
    draw = ImageDraw.Draw(canvas)
    for i, name in enumerate(names):
        top = 2 + i * row
        swatch = tuple(int(c) for c in colours[i])
        draw.rectangle([4, top, row, top + row - 4], fill=swatch, outline="black")
        draw.text((row + 8, top + 2), f"{i} {name}", fill="black")
    return canvas


def outputs(image_path: str, output: str, raw: bool) -> dict[str, str]:
    """The files one image writes: {kind: path}."""
    stem = os.path.join(output, os.path.splitext(os.path.basename(image_path))[0])
    kinds = ("mask", "overlay", "label") if raw else ("mask", "overlay")
    return {kind: f"{stem}_{kind}.png" for kind in kinds}


def label_images(workdir: str, specs: list[str], output: str, *, raw: bool = False,
                 overwrite: bool = False, options: dict | None = None) -> list[str]:
    """Predict every input image into ``output``; the files written. Every input and output
    is checked before the first prediction."""
    files = input_files(specs)
    planned = {path: outputs(path, output, raw) for path in files}
    targets = [p for paths in planned.values() for p in paths.values()]
    targets.append(os.path.join(output, "legend.png"))
    clobbered = sorted(set(map(os.path.realpath, targets)) & set(files))
    if clobbered:
        raise ValueError(f"{clobbered[0]} is an input and would be an output; choose another "
                         "--output")
    existing = [p for p in targets if os.path.exists(p)]
    if existing and not overwrite:
        raise FileExistsError(f"{existing[0]} exists ({len(existing)} of the outputs do); "
                              "choose another --output or pass --overwrite")
    for path in files:
        read_image(path, check_only=True)
    predictor = Predictor(workdir, options or {})
    os.makedirs(output, exist_ok=True)
    written = []
    for path in files:
        image = read_image(path)
        prediction = predictor(image)
        colour = viz.colourize(prediction, predictor.num_classes)
        blend = (0.4 * image.astype(np.float32) + 0.6 * colour.astype(np.float32))
        paths = planned[path]
        Image.fromarray(colour).save(paths["mask"])
        Image.fromarray(blend.astype(np.uint8)).save(paths["overlay"])
        if raw:
            Image.fromarray(prediction.astype(np.uint8)).save(paths["label"])
        written += list(paths.values())
        print(f"{path}: {image.shape[1]}x{image.shape[0]} -> {paths['mask']}")
    legend(predictor.class_names, predictor.num_classes).save(targets[-1])
    return written + [targets[-1]]


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m fcn_jax.predict",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True, help="a training workdir")
    parser.add_argument("--input", required=True, nargs="+",
                        help="image files, directories or glob patterns")
    parser.add_argument("--output", required=True, help="directory for the PNGs")
    parser.add_argument("--raw", action="store_true", help="also NAME_label.png (indices)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    parser.add_argument("--flip", action=argparse.BooleanOptionalAction, default=None,
                        help="average with the mirrored prediction (default: the workdir's)")
    parser.add_argument("--scales", type=float, nargs="+", default=None,
                        help="average over rescaled inputs, e.g. 0.75 1 1.25")
    parser.add_argument("--tile", type=int, default=None,
                        help="tiled sliding window of this size (0: whole image)")
    return parser.parse_args(argv)


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    options = {"flip": args.flip, "scales": tuple(args.scales) if args.scales else None,
               "tile_size": args.tile}
    written = label_images(args.workdir, args.input, args.output, raw=args.raw,
                           overwrite=args.overwrite, options=options)
    print(f"wrote {len(written)} files to {args.output}")


def run() -> None:
    """The ``fcn-predict`` console script (pyproject.toml)."""
    cli.guarded(main)(sys.argv[1:])


if __name__ == "__main__":
    run()
