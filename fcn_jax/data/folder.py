"""Your own data as a TensorFlow-free tfds builder, ``folder``: any set of images with
per-pixel class masks (FCN paper, section 4: a net fine-tuned to a new set of classes).

    FOLDER/images/NAME.jpg (.jpeg, .png, .bmp)   any size; grey or RGBA become RGB
    FOLDER/masks/NAME.png                        the class index of each pixel, as a palette
                                                 or grey PNG of the image's size; 255 = ignore
    FOLDER/classes.txt                           one class name per line, in index order
    FOLDER/train.txt, FOLDER/validation.txt      optional: the NAMEs of each split

Without the split lists, ``data.folder_validation_fraction`` of the images are the validation
split, picked by a hash of each NAME (adding images never moves the others). Every file is
checked while preparing; a bad one is an error naming it. The prepared copy lives under the
data dir in a config named by a fingerprint of the folder's path and its files' names, sizes
and modification times, so a changed folder is prepared again and the folder is only read.
"""

import hashlib
import os

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image, UnidentifiedImageError

from fcn_jax.data.embedded import png

SPLITS = ("train", "validation")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")
IGNORE = 255
LAYOUT = ("lay it out as FOLDER/images/NAME.jpg, FOLDER/masks/NAME.png and FOLDER/classes.txt "
          "(docs/configs.md, Your own dataset)")


def read_classes(folder: str) -> list[str]:
    """The class names of ``classes.txt``, one per non-empty line."""
    path = os.path.join(folder, "classes.txt")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found: {LAYOUT}")
    with open(path, encoding="utf-8") as f:
        names = [line.strip() for line in f if line.strip()]
    if not 2 <= len(names) < IGNORE:
        raise ValueError(f"{path} names {len(names)} classes; expected 2 to {IGNORE - 1}, one "
                         "per line (the background is a class too)")
    return names


def image_files(folder: str) -> dict[str, str]:
    """{NAME: image path} of ``images/``; each image needs its ``masks/NAME.png``."""
    directory = os.path.join(folder, "images")
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"{directory} not found: {LAYOUT}")
    images = {os.path.splitext(f)[0]: os.path.join(directory, f)
              for f in sorted(os.listdir(directory)) if f.lower().endswith(IMAGE_EXTENSIONS)}
    if not images:
        raise ValueError(f"{directory} holds no {'/'.join(IMAGE_EXTENSIONS)} images")
    missing = [n for n in images if not os.path.isfile(mask_path(folder, n))]
    if missing:
        raise FileNotFoundError(f"{mask_path(folder, missing[0])} not found ({len(missing)} "
                                "images have no mask): each image needs masks/NAME.png")
    return images


def mask_path(folder: str, name: str) -> str:
    return os.path.join(folder, "masks", f"{name}.png")


def in_validation(name: str, fraction: float) -> bool:
    """Whether ``name`` falls in the validation fraction, by a stable hash of the name."""
    digest = int(hashlib.sha1(name.encode()).hexdigest()[:8], 16)
    return digest / 0xFFFFFFFF < fraction


def split_names(folder: str, names: list[str], fraction: float) -> dict[str, list[str]]:
    """{split: NAMEs}: from ``train.txt`` / ``validation.txt`` when both exist, else by
    ``in_validation``. A listed NAME without an image is an error; both splits must be
    non-empty."""
    lists = {split: os.path.join(folder, f"{split}.txt") for split in SPLITS}
    if all(os.path.isfile(p) for p in lists.values()):
        splits = {}
        for split, path in lists.items():
            with open(path, encoding="utf-8") as f:
                splits[split] = [line.strip() for line in f if line.strip()]
            unknown = [n for n in splits[split] if n not in names]
            if unknown:
                raise ValueError(f"{path} lists {unknown[0]!r}, which has no image in "
                                 f"{os.path.join(folder, 'images')}")
    else:
        splits = {"train": [n for n in names if not in_validation(n, fraction)],
                  "validation": [n for n in names if in_validation(n, fraction)]}
    empty = [s for s in SPLITS if not splits[s]]
    if empty:
        raise ValueError(f"{folder}: the {empty[0]} split has no images ({len(names)} in all); "
                         "add images, write train.txt and validation.txt, or change "
                         "data.folder_validation_fraction")
    return splits


def read_example(image_path: str, label_path: str, num_classes: int) -> tuple:
    """(uint8 RGB image [H, W, 3], uint8 labels [H, W]); a file that is not an image, a mask
    of another size or in colour, or a class index out of range is an error naming it."""
    try:
        with Image.open(image_path) as f:
            image = np.asarray(f.convert("RGB"))
        with Image.open(label_path) as f:
            if f.mode not in ("P", "L"):
                raise ValueError(f"{label_path} is a {f.mode} image; a mask holds class "
                                 "indices: save it as a palette (P) or grey (L) PNG")
            label = np.asarray(f)
    except (UnidentifiedImageError, OSError) as error:
        raise ValueError(f"cannot read {error.filename or image_path}: {error}") from error
    if label.shape != image.shape[:2]:
        raise ValueError(f"{label_path} is {label.shape[1]}x{label.shape[0]} but its image "
                         f"{image_path} is {image.shape[1]}x{image.shape[0]}")
    bad = np.unique(label[(label >= num_classes) & (label != IGNORE)])
    if bad.size:
        raise ValueError(f"{label_path} holds class {int(bad[0])}, but classes.txt names "
                         f"{num_classes} classes (0 to {num_classes - 1}; {IGNORE} = ignore)")
    return image, label


def fingerprint(folder: str, fraction: float) -> str:
    """A config name that changes with the folder's path, files, sizes and times."""
    digest = hashlib.sha1(f"{os.path.abspath(folder)}|{fraction}".encode())
    for directory, _, files in sorted(os.walk(folder)):
        for name in sorted(files):
            stat = os.stat(os.path.join(directory, name))
            digest.update(f"{directory}/{name}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    return "f" + digest.hexdigest()[:16]


class FolderSegmentation(tfds.core.GeneratorBasedBuilder):
    """Images and per-pixel class masks from a folder (see the module docstring)."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}

    def __init__(self, *, folder: str, validation_fraction: float, **kwargs):
        self.folder, self.fraction = os.path.abspath(folder), validation_fraction
        self.class_names = read_classes(self.folder)
        config = tfds.core.BuilderConfig(name=fingerprint(self.folder, validation_fraction),
                                         description=f"The folder {self.folder}.")
        super().__init__(config=config, **kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            description=f"Images and class masks of {self.folder}. Label 255 is ignored.",
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(None, None, 3), encoding_format="png"),
                "label": tfds.features.Image(shape=(None, None, 1), encoding_format="png"),
                "id": tfds.features.Text(),
            }),
            supervised_keys=("image", "label"),
            metadata=tfds.core.MetadataDict(class_names=self.class_names),
        )

    def _split_generators(self, dl_manager):
        images = image_files(self.folder)
        splits = split_names(self.folder, list(images), self.fraction)
        return {split: self._generate_examples(images, names) for split, names in splits.items()}

    def _generate_examples(self, images: dict, names: list[str]):
        for name in names:
            image, label = read_example(images[name], mask_path(self.folder, name),
                                        len(self.class_names))
            yield name, {"image": png(image), "label": png(label), "id": name}


def prepare(data_dir: str | os.PathLike, folder: str,
            validation_fraction: float) -> FolderSegmentation:
    """Build (or reuse) the ArrayRecord files of ``folder`` under ``data_dir``."""
    if not folder:
        raise ValueError("data.name='folder' needs data.folder: the directory holding images/, "
                         "masks/ and classes.txt")
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"data.folder={folder!r}: no such directory")
    builder = FolderSegmentation(folder=folder, validation_fraction=validation_fraction,
                                 data_dir=os.fspath(data_dir), file_format="array_record")
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(try_download_gcs=False))
    return builder
