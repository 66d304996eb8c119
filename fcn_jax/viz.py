"""Colour palettes and prediction overlays for qualitative results (FCN paper, Figure 4)."""

import numpy as np

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


def save_prediction_grid(path: str, images, labels, columns: dict, num_classes: int,
                         class_names=None) -> None:
    """One row per image: image | ground truth | one prediction per named column (as the
    paper's Figure 4: FCN-32s, 16s, 8s side by side)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    titles = ["image", "ground truth", *columns]
    fig, axes = plt.subplots(len(images), len(titles), squeeze=False,
                             figsize=(1.8 * len(titles), 1.8 * len(images)))
    for r, (image, label) in enumerate(zip(images, labels)):
        panels = [image, colourize(label, num_classes)]
        panels += [colourize(pred[r], num_classes) for pred in columns.values()]
        for c, panel in enumerate(panels):
            axes[r, c].imshow(panel, interpolation="nearest")
            axes[r, c].axis("off")
            if r == 0:
                axes[r, c].set_title(titles[c], fontsize=9)
    if class_names:
        colours = palette(num_classes)[:num_classes] / 255.0
        handles = [matplotlib.patches.Patch(color=colours[i], label=n)
                   for i, n in enumerate(class_names)]
        fig.legend(handles=handles, loc="lower center", ncol=len(class_names), fontsize=7,
                   frameon=False)
    fig.tight_layout(rect=(0, 0.05 if class_names else 0, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
