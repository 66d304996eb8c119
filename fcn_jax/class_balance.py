"""Class balancing by median frequency (FCN paper, section 4.4, "Class balancing").

The paper trains unbalanced and finds balancing unnecessary; the alternative it weighs is
weighting the loss per class, here by median frequency (Eigen & Fergus, ICCV 2015): class c
weighs ``median(freq) / freq(c)``, where ``freq(c)`` is c's pixel count over the labelled
(not ignored) pixel count of the training images in which c appears. Classes that never appear weigh 0 and do not enter
the median.
"""

from collections.abc import Iterable

import numpy as np

from fcn_jax.losses import IGNORE_LABEL

BALANCES = ("none", "median_frequency")


def label_counts(labels: Iterable[np.ndarray], num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(pixels of each class, valid pixels of the images where each class appears)."""
    pixels = np.zeros(num_classes, np.int64)
    image_pixels = np.zeros(num_classes, np.int64)
    for label in labels:
        label = np.asarray(label)
        counts = np.bincount(label[label != IGNORE_LABEL].ravel().astype(np.int64),
                             minlength=num_classes)[:num_classes]
        pixels += counts
        image_pixels += np.where(counts > 0, counts.sum(), 0)
    return pixels, image_pixels


def median_frequency_weights(pixels: np.ndarray, image_pixels: np.ndarray) -> tuple[float, ...]:
    """One loss weight per class from ``label_counts``."""
    present = pixels > 0
    if not present.any():
        raise ValueError("median-frequency balancing: the training split has no labelled pixel")
    freq = np.where(present, pixels / np.maximum(image_pixels, 1), 0.0)
    median = float(np.median(freq[present]))
    return tuple(float(w) for w in np.where(present, median / np.where(present, freq, 1), 0.0))
