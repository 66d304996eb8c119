"""The ``fcn_objects`` classification dataset (the ImageNet stand-in) as a TensorFlow-free
tfds builder, and its splits as in-memory arrays for classifier pretraining.

Every example is rendered by :func:`fcn_jax.data.objects.render_object` from a seed derived
from ``(config seed, split, index)`` as in ``embedded``, with a stream of its own (the base
seed differs from the scenes'), so no image repeats a segmentation scene. Configs:
``default`` renders 96x96 images (8000 train, 1000 validation): 96 = 3 x 32, so a VGG16's
pool5 is 3x3, the miniature of ImageNet's 224 = 7 x 32; ``tiny`` renders 64x64 images
(64 / 32) for tests.
"""

import dataclasses
import os

import numpy as np
import tensorflow_datasets as tfds

from fcn_jax.data import objects
from fcn_jax.data.embedded import example_id, example_seed, png, prepare_builder

SPLITS = ("train", "validation")
BASE_SEED = 1_000_003  # a stream apart from the segmentation scenes' (seed 0)


@dataclasses.dataclass
class ObjectsConfig(tfds.core.BuilderConfig):
    """Image size, split sizes and base seed of one dataset variant."""

    size: int = 96
    num_train: int = 8000
    num_validation: int = 1000
    seed: int = BASE_SEED

    def split_size(self, split: str) -> int:
        return {"train": self.num_train, "validation": self.num_validation}[split]


class FcnObjects(tfds.core.GeneratorBasedBuilder):
    """Object-centric images of 20 shape families, one object and one label per image."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    BUILDER_CONFIGS = [
        ObjectsConfig(name="default", description="96x96 images, 8000/1000."),
        ObjectsConfig(name="tiny", description="64x64 images, 64/32, for tests.",
                      size=64, num_train=64, num_validation=32),
    ]

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            description=("Object-centric images of procedural shapes for classifier "
                         f"pretraining. Classes: {', '.join(objects.CLASS_NAMES)}."),
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(None, None, 3), encoding_format="png"),
                "label": tfds.features.ClassLabel(names=list(objects.CLASS_NAMES)),
                "id": tfds.features.Text(),
            }),
            supervised_keys=("image", "label"),
        )

    def _split_generators(self, dl_manager):
        return {split: self._generate_examples(split) for split in SPLITS}

    def _generate_examples(self, split: str):
        config = self.builder_config
        for index in range(config.split_size(split)):
            image, label = objects.render_object(
                example_seed(config.seed, split, index), config.size)
            key = example_id(split, index)
            yield key, {"image": png(image), "label": label, "id": key}


def prepare(data_dir: str | os.PathLike, config: str = "default") -> FcnObjects:
    """Build (or reuse) the ArrayRecord files of config under data_dir and return the builder."""
    return prepare_builder(FcnObjects, data_dir, config)


def load_split(builder: FcnObjects, split: str) -> tuple[np.ndarray, np.ndarray]:
    """A whole split in memory: images uint8 [N, S, S, 3] and labels int32 [N]."""
    source = builder.as_data_source(split)
    examples = [source[i] for i in range(len(source))]
    images = np.stack([np.asarray(e["image"], np.uint8) for e in examples])
    return images, np.asarray([e["label"] for e in examples], np.int32)
