"""Datasets: TFDS builders read through ``tfds.data_source`` (no TensorFlow at runtime)."""

import contextlib
import dataclasses
import errno
import fcntl
import os
from collections.abc import Sequence

import ml_collections

from fcn_jax.data import embedded, folder, voc
from fcn_jax.data.checked import CheckedSource

# data.name -> prepare(data dir, config.data): the builder, its files written once.
BUILDERS = {
    "fcn_shapes": lambda directory, data: embedded.prepare(directory, data.builder_config),
    "voc_sbd": lambda directory, data: voc.prepare(directory, data.builder_config),
    "folder": lambda directory, data: folder.prepare(directory, data.folder,
                                                     data.folder_validation_fraction),
}
# The builders with named configs (data.builder_config picks one); ``folder`` names its own.
BUILDER_CLASSES = {"fcn_shapes": embedded.FcnShapes, "voc_sbd": voc.VocSbd}


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A prepared dataset: its splits as random-access sources and its class names."""

    name: str
    class_names: tuple[str, ...]
    splits: dict[str, Sequence]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def split(self, name: str) -> Sequence:
        """A split's data source; an unknown split names the ones that exist."""
        if name not in self.splits:
            raise ValueError(f"split {name!r} not in dataset {self.name!r}: "
                             f"available {sorted(self.splits)}")
        source = self.splits[name]
        if len(source) == 0:
            raise ValueError(f"split {name!r} of dataset {self.name!r} has no examples; "
                             "prepare the dataset again or choose another split in "
                             "config.data")
        return source


class Prefix(Sequence):
    """The first ``count`` examples of a source."""

    def __init__(self, source: Sequence, count: int):
        self.source, self.count = source, count

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int):
        if not -self.count <= index < self.count:
            raise IndexError(f"index {index} outside the first {self.count} examples")
        return self.source[index % self.count]


def first_examples(source: Sequence, count: int, key: str) -> Sequence:
    """``source`` cut to its first ``count`` examples (0: all of it); more than it holds is
    an error naming ``key`` and the range."""
    if count > len(source):
        raise ValueError(f"{key}={count}: the split has {len(source)} examples; choose 1 to "
                         f"{len(source)}, or 0 for all")
    return Prefix(source, count) if count else source


def data_dir(config: ml_collections.ConfigDict) -> str:
    """config.data.data_dir, else $TFDS_DATA_DIR, else ~/tensorflow_datasets."""
    return (config.data.data_dir or os.environ.get("TFDS_DATA_DIR")
            or os.path.expanduser("~/tensorflow_datasets"))


@contextlib.contextmanager
def preparation_lock(directory: str, name: str):
    """Hold ``directory/.NAME.prepare.lock`` while a dataset is prepared, so that processes
    starting together (a sweep's parallel trials, the hosts of one job) prepare it once and the
    others then reuse it. A directory where no lock file can be made (read-only, prepared
    before) is used without one."""
    try:
        os.makedirs(directory, exist_ok=True)
        handle = open(os.path.join(directory, f".{name}.prepare.lock"), "a")
    except OSError:
        yield
        return
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"waiting for another process to prepare {name} in {directory}", flush=True)
            fcntl.flock(handle, fcntl.LOCK_EX)
        except OSError:  # a filesystem without flock (some NFS, Lustre): go on unlocked
            pass
        yield


def build(config: ml_collections.ConfigDict) -> Dataset:
    """Prepare (once) and open the dataset ``config.data`` names."""
    name = config.data.name
    if name not in BUILDERS:
        raise ValueError(f"data.name={name!r}: expected one of {sorted(BUILDERS)}")
    configs = sorted(BUILDER_CLASSES[name].builder_configs) if name in BUILDER_CLASSES else []
    if configs and config.data.builder_config not in configs:
        raise ValueError(f"data.builder_config={config.data.builder_config!r}: {name} has "
                         f"{configs}")
    directory = data_dir(config)
    try:
        with preparation_lock(directory, f"{name}-{config.data.builder_config}"):
            builder = BUILDERS[name](directory, config.data)
    except OSError as error:
        if error.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise
        raise PermissionError(f"cannot prepare {name} in {directory} ({type(error).__name__}: "
                      f"{error.strerror or error}); set data.data_dir (or $TFDS_DATA_DIR) to a "
                      "directory you can write to, or prepare the dataset there first") from error
    class_names = tuple(builder.info.metadata["class_names"])
    location = builder.data_dir
    splits = {split: CheckedSource(builder.as_data_source(split), dataset=name, split=split,
                                   num_classes=len(class_names), location=location)
              for split in builder.info.splits}
    return Dataset(name, class_names, splits)
