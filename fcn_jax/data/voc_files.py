"""The extracted PASCAL VOC 2012 and SBD archives: split lists, images and labels, checked.

Read-only access to a manual download directory laid out as the archives extract
(FCN paper, section 4.2 and "Data splits" of the reference release)::

    VOCdevkit/VOC2012/JPEGImages/<id>.jpg
    VOCdevkit/VOC2012/SegmentationClass/<id>.png        palette PNG: index = class id, 255 = void
    VOCdevkit/VOC2012/ImageSets/Segmentation/{train,val}.txt
    benchmark_RELEASE/dataset/img/<id>.jpg
    benchmark_RELEASE/dataset/cls/<id>.mat               GTcls.Segmentation: uint8 class ids
    benchmark_RELEASE/dataset/train.txt
    seg11valid.txt  or  VOCdevkit/VOC2011/ImageSets/Segmentation/val.txt

``seg11valid`` (the paper's validation set, 736 images) is the VOC 2011 segmentation val list
minus the SBD train ids, in list order; its images and labels come from VOC 2012, which
contains every VOC 2011 image. A missing or malformed file raises an error naming it.
"""

import io
import os

import numpy as np
import scipy.io
from PIL import Image

from fcn_jax.data.checked import DataError
from fcn_jax.losses import IGNORE_LABEL

CLASS_NAMES = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car",
               "cat", "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person",
               "pottedplant", "sheep", "sofa", "train", "tvmonitor")

VOC2012 = os.path.join("VOCdevkit", "VOC2012")
SBD = os.path.join("benchmark_RELEASE", "dataset")
SEG11VALID_LISTS = ("seg11valid.txt",
                    os.path.join("VOCdevkit", "VOC2011", "ImageSets", "Segmentation", "val.txt"))
SPLITS = ("sbd_train", "seg11valid", "voc2012_train", "voc2012_val")


def read_ids(path: str) -> list[str]:
    """The image ids of a split list, one a line, blank lines skipped."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"split list {path} does not exist")
    with open(path) as file:
        return [line.strip() for line in file if line.strip()]


def seg11valid_ids(root: str) -> list[str]:
    """VOC 2011 segmentation val ids not in SBD train, from the first list of
    ``SEG11VALID_LISTS`` present under root."""
    paths = [os.path.join(root, name) for name in SEG11VALID_LISTS]
    present = [path for path in paths if os.path.isfile(path)]
    if not present:
        raise FileNotFoundError(
            "seg11valid needs a VOC 2011 val list: put the FCN reference release's "
            f"seg11valid.txt at {paths[0]}, or the VOC 2011 segmentation val list at {paths[1]}")
    sbd_train = set(read_ids(os.path.join(root, SBD, "train.txt")))
    return [ident for ident in read_ids(present[0]) if ident not in sbd_train]


def split_ids(root: str, split: str) -> list[str]:
    """The ids of one of ``SPLITS``."""
    if split == "seg11valid":
        return seg11valid_ids(root)
    if split == "sbd_train":
        return read_ids(os.path.join(root, SBD, "train.txt"))
    year_split = split.removeprefix("voc2012_")
    return read_ids(os.path.join(root, VOC2012, "ImageSets", "Segmentation", f"{year_split}.txt"))


def split_files(root: str, split: str) -> list[tuple[str, str, str]]:
    """(id, image path, label path) of every example of split; every file exists."""
    if split == "sbd_train":
        image_dir, label_dir, label_ext = (os.path.join(root, SBD, "img"),
                                           os.path.join(root, SBD, "cls"), ".mat")
    else:
        image_dir, label_dir, label_ext = (os.path.join(root, VOC2012, "JPEGImages"),
                                           os.path.join(root, VOC2012, "SegmentationClass"),
                                           ".png")
    files = [(ident, os.path.join(image_dir, ident + ".jpg"),
              os.path.join(label_dir, ident + label_ext)) for ident in split_ids(root, split)]
    for ident, *paths in files:
        for path in paths:
            if not os.path.isfile(path):
                raise FileNotFoundError(f"{split} lists id {ident} but {path} does not exist")
    return files


def read_label(path: str) -> np.ndarray:
    """uint8 [H, W] class ids of a VOC palette PNG or an SBD ``.mat``, values checked."""
    label = _read_mat_label(path) if path.endswith(".mat") else _read_png_label(path)
    if label.ndim != 2:
        raise DataError(f"{path}: expected a 2-D label map, got shape {label.shape}")
    values = np.unique(label)
    bad = values[(values >= len(CLASS_NAMES)) & (values != IGNORE_LABEL)]
    if bad.size:
        raise DataError(f"{path}: label values {bad.tolist()} are not class ids "
                        f"0..{len(CLASS_NAMES) - 1} or the void label {IGNORE_LABEL}")
    return label.astype(np.uint8)


def _read_png_label(path: str) -> np.ndarray:
    """Palette indices of a palette ("P") or greyscale ("L") PNG."""
    try:
        with Image.open(path) as image:
            mode, label = image.mode, np.asarray(image)
    except Exception as error:
        raise DataError(f"{path} cannot be read as a PNG ({type(error).__name__}: "
                        f"{error})") from error
    if mode not in ("P", "L"):
        raise DataError(f"{path}: expected a palette PNG of class ids, got mode {mode!r}")
    return label


def _read_mat_label(path: str) -> np.ndarray:
    """``GTcls.Segmentation`` of an SBD ``.mat`` file."""
    try:
        contents = scipy.io.loadmat(path, struct_as_record=False, squeeze_me=True)
    except Exception as error:
        raise DataError(f"{path} cannot be read as a MATLAB file ({type(error).__name__}: "
                        f"{error})") from error
    segmentation = getattr(contents.get("GTcls"), "Segmentation", None)
    if not isinstance(segmentation, np.ndarray) or segmentation.dtype.kind not in "ui":
        raise DataError(f"{path} has no integer GTcls.Segmentation label map")
    return segmentation


def read_jpeg(path: str) -> tuple[bytes, tuple[int, int]]:
    """The bytes and (H, W) of an RGB JPEG, fully decoded once to check them."""
    with open(path, "rb") as file:
        data = file.read()
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            form, mode, size = image.format, image.mode, (image.height, image.width)
    except Exception as error:
        raise DataError(f"{path} cannot be decoded as a JPEG ({type(error).__name__}: "
                        f"{error})") from error
    if form != "JPEG" or mode != "RGB":
        raise DataError(f"{path}: expected an RGB JPEG, got a {mode} {form}")
    return data, size


def read_example(image_path: str, label_path: str) -> tuple[bytes, np.ndarray]:
    """JPEG bytes and uint8 [H, W] class ids of one example; their sizes must agree."""
    image, size = read_jpeg(image_path)
    label = read_label(label_path)
    if size != label.shape:
        raise DataError(f"{image_path} is {size[0]}x{size[1]} but its label map {label_path} "
                        f"is {label.shape[0]}x{label.shape[1]}")
    return image, label
