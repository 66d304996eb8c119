"""PASCAL VOC 2012 and SBD as a TensorFlow-free tfds builder, ``voc_sbd`` (FCN paper, 4.2).

Splits: ``sbd_train`` (SBD train, 8,498 images: the paper's training set), ``seg11valid``
(the 736 VOC 2011 val images not in SBD train: the paper's validation set, Tables 2 and 4),
``voc2012_train`` (1,464) and ``voc2012_val`` (1,449). The files come from a manual download
directory (see ``VocSbd.MANUAL_DOWNLOAD_INSTRUCTIONS`` and :mod:`fcn_jax.data.voc_files`), which
is only read. Images are stored as the JPEG bytes on disk; labels as one-channel PNGs of the
class ids (255 = void), like the embedded builder, so ``as_data_source`` decodes with PIL.

Prepare once from the command line::

    python -m fcn_jax.data.voc --manual_dir DIR --data_dir DIR
"""

import argparse
import io
import os

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

from fcn_jax.data import voc_files
from fcn_jax.data.manual import require_manual_dir


def _png(label: np.ndarray) -> bytes:
    """One-channel PNG bytes of a uint8 [H, W] label map."""
    buffer = io.BytesIO()
    Image.fromarray(label).save(buffer, format="PNG")
    return buffer.getvalue()


# Run as ``python -m fcn_jax.data.voc``, this file is imported twice (fcn_jax.data imports it,
# then it runs as __main__): only the imported copy registers the builder's name with tfds.
class VocSbd(tfds.core.GeneratorBasedBuilder, skip_registration=__name__ == "__main__"):
    """PASCAL VOC 2012 segmentation and SBD, with the FCN paper's splits."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    BUILDER_CONFIGS = [tfds.core.BuilderConfig(name="default",
                                               description="Full-size images, four splits.")]
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "Download and extract into the manual directory, keeping the archives' folders: "
        "(1) VOCtrainval_11-May-2012.tar from the PASCAL VOC 2012 site "
        "(http://host.robots.ox.ac.uk/pascal/VOC/voc2012/), giving "
        f"{voc_files.VOC2012}/; (2) benchmark.tgz (SBD) from the Berkeley Semantic "
        "Boundaries Dataset page (https://www2.eecs.berkeley.edu/Research/Projects/CS/vision/"
        f"grouping/semantic_contours/), giving {voc_files.SBD}/; (3) the VOC 2011 "
        "segmentation val list: either seg11valid.txt of the FCN reference release "
        f"(fcn.berkeleyvision.org, data/pascal/) as {voc_files.SEG11VALID_LISTS[0]}, or "
        "ImageSets/Segmentation/val.txt of VOCtrainval_25-May-2011.tar "
        "(http://host.robots.ox.ac.uk/pascal/VOC/voc2011/) as "
        f"{voc_files.SEG11VALID_LISTS[1]}.")

    def __init__(self, *, manual_dir: str | os.PathLike | None = None, **kwargs):
        """``manual_dir``: the extracted archives; None = <data_dir>/downloads/manual."""
        super().__init__(**kwargs)
        self.manual_dir = os.fspath(manual_dir or self.data_dir_root / "downloads" / "manual")

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            description=("PASCAL VOC 2012 segmentation and the Semantic Boundaries Dataset, "
                         "split as in the FCN paper. Label 255 is void (ignored)."),
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(None, None, 3), encoding_format="jpeg"),
                "label": tfds.features.Image(shape=(None, None, 1), encoding_format="png"),
                "id": tfds.features.Text(),
            }),
            supervised_keys=("image", "label"),
            homepage="http://host.robots.ox.ac.uk/pascal/VOC/voc2012/",
            metadata=tfds.core.MetadataDict(class_names=list(voc_files.CLASS_NAMES)),
        )

    def _split_generators(self, dl_manager):
        root = require_manual_dir(self.manual_dir, self.name,
                                  self.MANUAL_DOWNLOAD_INSTRUCTIONS)
        files = {split: voc_files.split_files(root, split) for split in voc_files.SPLITS}
        return {split: self._generate_examples(examples) for split, examples in files.items()}

    def _generate_examples(self, examples):
        for ident, image_path, label_path in examples:
            image, label = voc_files.read_example(image_path, label_path)
            yield ident, {"image": image, "label": _png(label), "id": ident}


def prepare(data_dir: str | os.PathLike, config: str = "default",
            manual_dir: str | os.PathLike | None = None) -> VocSbd:
    """Build (or reuse) the ArrayRecord files under data_dir and return the builder."""
    builder = VocSbd(config=config, data_dir=os.fspath(data_dir), manual_dir=manual_dir,
                     file_format="array_record")
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(try_download_gcs=False))
    return builder


def main(argv: list[str] | None = None) -> None:
    """Prepare the dataset and print each split's size."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manual_dir", default=None,
                        help="the extracted archives (default <data_dir>/downloads/manual)")
    parser.add_argument("--data_dir", required=True, help="where tfds writes the dataset")
    args = parser.parse_args(argv)
    builder = prepare(args.data_dir, manual_dir=args.manual_dir)
    for split, info in builder.info.splits.items():
        print(f"{split}: {info.num_examples} examples")
    print(f"prepared {builder.data_dir}")


if __name__ == "__main__":
    # Run the imported module's command, whose builder is the registered one: tfds finds a
    # builder's metadata through its module's package, which this __main__ copy has none of.
    from fcn_jax.data import voc as registered
    registered.main()
