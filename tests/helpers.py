"""Small shared builders for tests: a tiny config and random segmentation batches."""

import numpy as np

from configs import default


def tiny_config(variant: str = "fcn8s"):
    """A CPU-tiny config: narrow VGG, small crops, few steps."""
    c = default.get_config(variant)
    c.model.width = 0.0625
    c.model.fc_channels = 32
    c.data.builder_config = "tiny"
    c.data.crop_size = 48
    c.data.num_threads = 1
    c.data.prefetch = 2
    c.train.batch_size = 8
    c.eval.batch_size = 8
    c.optim.warmup_steps = 0
    return c


def random_batch(seed: int, batch: int, height: int, width: int, num_classes: int,
                 ignore_fraction: float = 0.1) -> dict:
    """Random uint8 images and labels with some 255 (ignore) pixels."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, num_classes, (batch, height, width)).astype(np.uint8)
    labels[rng.random(labels.shape) < ignore_fraction] = 255
    images = rng.integers(0, 256, (batch, height, width, 3)).astype(np.uint8)
    return {"image": images, "label": labels}
