"""The embedded ``fcn_shapes`` dataset as a TensorFlow-free tfds builder.

Every example is rendered by :func:`fcn_jax.data.shapes.render_scene` from a
seed derived from ``(config seed, split, index)`` with ``np.random.SeedSequence``,
so the splits are disjoint and every example can be regenerated exactly.
Images (RGB) and labels (one channel, class ids, see
``shapes.CLASS_NAMES``) are encoded as lossless PNG with PIL before they reach
tfds, since tfds would otherwise encode numpy arrays with TensorFlow. The
builder writes ArrayRecord files; ``builder.as_data_source(split)`` decodes them
with PIL, so neither preparing nor reading needs TensorFlow.

Configs: ``default`` renders 112x112 scenes (1000 train, 200 validation,
200 test); ``tiny`` renders 72x56 scenes (16/8/8) for tests.
"""

import dataclasses
import io
import os

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

from fcn_jax.data import shapes

SPLITS = ("train", "validation", "test")


@dataclasses.dataclass
class ShapesConfig(tfds.core.BuilderConfig):
    """Scene size, split sizes and base seed of one dataset variant."""

    height: int = 112
    width: int = 112
    num_train: int = 1000
    num_validation: int = 200
    num_test: int = 200
    seed: int = 0

    def split_size(self, split: str) -> int:
        """Number of examples in split."""
        return {"train": self.num_train, "validation": self.num_validation,
                "test": self.num_test}[split]


def example_seed(config_seed: int, split: str, index: int) -> int:
    """Seed of example index of split; distinct splits draw from distinct streams."""
    entropy = [config_seed, SPLITS.index(split), index]
    return int(np.random.SeedSequence(entropy).generate_state(1, np.uint64)[0])


def example_id(split: str, index: int) -> str:
    """Identifier stored in the "id" feature."""
    return f"{split}_{index:06d}"


def parse_example_id(example_id_value: str | bytes) -> tuple[str, int]:
    """Inverse of example_id: (split, index)."""
    if isinstance(example_id_value, bytes):
        example_id_value = example_id_value.decode()
    split, index = example_id_value.rsplit("_", 1)
    return split, int(index)


def png(array: np.ndarray) -> io.BytesIO:
    """Lossless PNG file object of a uint8 [H, W] ("L") or [H, W, 3] ("RGB") array."""
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    buffer.seek(0)
    return buffer


class FcnShapes(tfds.core.GeneratorBasedBuilder):
    """Procedural scenes of textured shapes with per-pixel shape classes."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    BUILDER_CONFIGS = [
        ShapesConfig(name="default", description="112x112 scenes, 1000/200/200."),
        ShapesConfig(name="tiny", description="72x56 scenes, 16/8/8, for tests.",
                     height=72, width=56, num_train=16, num_validation=8, num_test=8),
    ]

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            description=("Procedural scenes of textured shapes for semantic segmentation. "
                         f"Label classes: {', '.join(shapes.CLASS_NAMES)}."),
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(None, None, 3), encoding_format="png"),
                "label": tfds.features.Image(shape=(None, None, 1), encoding_format="png"),
                "id": tfds.features.Text(),
            }),
            supervised_keys=("image", "label"),
            metadata=tfds.core.MetadataDict(class_names=list(shapes.CLASS_NAMES)),
        )

    def _split_generators(self, dl_manager):
        return {split: self._generate_examples(split) for split in SPLITS}

    def _generate_examples(self, split: str):
        config = self.builder_config
        for index in range(config.split_size(split)):
            seed = example_seed(config.seed, split, index)
            image, label = shapes.render_scene(seed, config.height, config.width)
            key = example_id(split, index)
            yield key, {"image": png(image), "label": png(label), "id": key}


def prepare_builder(builder_class, data_dir: str | os.PathLike, config: str):
    """Build (or reuse) the ArrayRecord files of a procedural builder's config under data_dir
    (nothing is downloaded) and return the builder."""
    builder = builder_class(config=config, data_dir=os.fspath(data_dir),
                            file_format="array_record")
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(try_download_gcs=False))
    return builder


def prepare(data_dir: str | os.PathLike, config: str = "default") -> FcnShapes:
    """Build (or reuse) the ArrayRecord files of config under data_dir and return the builder."""
    return prepare_builder(FcnShapes, data_dir, config)
