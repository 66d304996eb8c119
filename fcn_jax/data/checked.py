"""Read examples with clear errors: every failure names the dataset, split, example and a fix.

``CheckedSource`` wraps a split's random-access source. Reading an example that cannot be
decoded (corrupt image bytes), whose label has a value outside ``[0, num_classes)`` other
than the ignore label 255, or whose image and label differ in size raises ``DataError``.
"""

from collections.abc import Sequence

import numpy as np

from fcn_jax.losses import IGNORE_LABEL


class DataError(ValueError):
    """An example that cannot be used for training or evaluation."""


class CheckedSource(Sequence):
    """A split's source whose items are validated ``{"image", "label", "id"}`` dicts."""

    def __init__(self, source: Sequence, *, dataset: str, split: str, num_classes: int,
                 location: str):
        self.source = source
        self.dataset, self.split = dataset, split
        self.num_classes = num_classes
        self.location = location

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> dict:
        where = f"{self.dataset}/{self.split} example {index}"
        try:
            example = self.source[index]
        except Exception as error:
            raise DataError(
                f"{where} in {self.location} cannot be read or decoded ({type(error).__name__}: "
                f"{error}); the prepared files are damaged: delete {self.location} and run "
                "again to prepare the dataset afresh") from error
        if "id" in example:
            ident = example["id"]
            where += f" (id {ident.decode() if isinstance(ident, bytes) else ident})"
        return check_example(example, where, self.num_classes)


def check_example(example: dict, where: str, num_classes: int) -> dict:
    """Validate one decoded example; ``where`` names it in the error."""
    image = np.asarray(example["image"])
    label = np.asarray(example["label"])
    if label.ndim == 3 and label.shape[-1] == 1:
        label = label[..., 0]
    if image.ndim != 3 or image.shape[-1] != 3 or label.ndim != 2:
        raise DataError(f"{where}: expected an RGB image [H,W,3] and a label map [H,W], got "
                        f"shapes {image.shape} and {label.shape}; fix or remove the example")
    if image.shape[:2] != label.shape:
        raise DataError(f"{where}: image is {image.shape[0]}x{image.shape[1]} but its label "
                        f"map is {label.shape[0]}x{label.shape[1]}; they must be the same "
                        "size: fix or remove the example")
    values = np.unique(label)
    bad = values[(values >= num_classes) & (values != IGNORE_LABEL)]
    if bad.size:
        raise DataError(f"{where}: label values {bad.tolist()} are outside [0, {num_classes}) "
                        f"and not the ignore label {IGNORE_LABEL}; fix the label map or the "
                        "dataset's class list")
    return dict(example, image=image, label=label)
