"""Colour palettes and prediction overlays for qualitative results (FCN paper, Figure 4)."""

import numpy as np
from PIL import Image

from fcn_jax.losses import IGNORE_LABEL


def palette(num_classes: int) -> np.ndarray:
    """The PASCAL VOC colour map (bit-interleaved) for ``num_classes``; ignore is white."""
    colours = np.zeros((256, 3), np.uint8)
    for i in range(256):
        c, r, g, b = i, 0, 0, 0
        for bit in range(8):
            r |= ((c >> 0) & 1) << (7 - bit)
            g |= ((c >> 1) & 1) << (7 - bit)
            b |= ((c >> 2) & 1) << (7 - bit)
            c >>= 3
        colours[i] = (r, g, b)
    colours[IGNORE_LABEL] = 255
    return colours[:max(num_classes, IGNORE_LABEL + 1)]


def colourize(label: np.ndarray, num_classes: int) -> np.ndarray:
    """A label map [H,W] -> RGB [H,W,3]."""
    return palette(num_classes)[np.asarray(label, np.uint8)]


def overlay_row(image: np.ndarray, label: np.ndarray, prediction: np.ndarray,
                num_classes: int, alpha: float = 0.6) -> np.ndarray:
    """image | ground truth | prediction | prediction blended over the image, side by side."""
    pred_rgb = colourize(prediction, num_classes)
    blend = (1 - alpha) * image.astype(np.float32) + alpha * pred_rgb.astype(np.float32)
    gap = np.full((image.shape[0], 2, 3), 255, np.uint8)
    return np.concatenate([image, gap, colourize(label, num_classes), gap, pred_rgb, gap,
                           blend.astype(np.uint8)], axis=1)


def save_overlays(path: str, images, labels, predictions, num_classes: int,
                  zoom: int = 2) -> None:
    """Stack one overlay row per image and save a PNG, enlarged ``zoom`` times."""
    rows = [overlay_row(i, l, p, num_classes) for i, l, p in zip(images, labels, predictions)]
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 2), (0, width - r.shape[1]), (0, 0)), constant_values=255)
            for r in rows]
    grid = Image.fromarray(np.concatenate(rows, axis=0))
    grid.resize((grid.width * zoom, grid.height * zoom), Image.NEAREST).save(path)
