"""Training-time augmentation and evaluation padding in numpy (FCN paper, section 4.3).

Random rescaling, cropping and mirroring; pixels that the crop takes from outside the image
get the ignore label, so they never enter the loss. Evaluation pads whole images to a multiple
of the net's stride, also with ignore labels, so every batch shape compiles once.
"""

import numpy as np
from PIL import Image

from fcn_jax.inputs import PAD_RGB
from fcn_jax.losses import IGNORE_LABEL


def resize(image: np.ndarray, label: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Rescale an image bilinearly and its label map by nearest neighbour."""
    height, width = label.shape
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    image = np.asarray(Image.fromarray(image).resize(size, Image.BILINEAR))
    label = np.asarray(Image.fromarray(label).resize(size, Image.NEAREST))
    return image, label


def pad_to(image: np.ndarray, label: np.ndarray, height: int,
           width: int) -> tuple[np.ndarray, np.ndarray]:
    """Pad bottom/right to at least ``height`` x ``width``: RGB mean pixels, ignore labels."""
    pad_h, pad_w = max(0, height - label.shape[0]), max(0, width - label.shape[1])
    if pad_h == 0 and pad_w == 0:
        return image, label
    out_image = np.broadcast_to(PAD_RGB, (label.shape[0] + pad_h, label.shape[1] + pad_w, 3)).copy()
    out_label = np.full(out_image.shape[:2], IGNORE_LABEL, np.uint8)
    out_image[:label.shape[0], :label.shape[1]] = image
    out_label[:label.shape[0], :label.shape[1]] = label
    return out_image, out_label


def random_scale_crop_flip(image: np.ndarray, label: np.ndarray, rng: np.random.Generator, *,
                           crop_size: int, scale_range: tuple[float, float],
                           flip: bool) -> tuple[np.ndarray, np.ndarray]:
    """Rescale by U(scale_range), pad, take a random ``crop_size`` square, maybe mirror."""
    low, high = scale_range
    if low <= 0 or high < low:
        raise ValueError(f"data.scale_range={scale_range!r}: expected 0 < low <= high")
    scale = rng.uniform(low, high)
    if scale != 1.0:
        image, label = resize(image, label, scale)
    image, label = pad_to(image, label, crop_size, crop_size)
    top = rng.integers(0, label.shape[0] - crop_size + 1)
    left = rng.integers(0, label.shape[1] - crop_size + 1)
    image = image[top:top + crop_size, left:left + crop_size]
    label = label[top:top + crop_size, left:left + crop_size]
    if flip and rng.random() < 0.5:
        image, label = image[:, ::-1], label[:, ::-1]
    return np.ascontiguousarray(image), np.ascontiguousarray(label)


def round_up(value: int, multiple: int) -> int:
    """The smallest multiple of ``multiple`` that is >= ``value``."""
    return -(-value // multiple) * multiple
