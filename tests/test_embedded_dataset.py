"""Tests of the procedural shapes renderer and the TensorFlow-free tfds builder."""

import pathlib
import sys

import numpy as np
import pytest

from fcn_jax.data import embedded, shapes

BAR = shapes.CLASS_NAMES.index("bar")
DISK = shapes.CLASS_NAMES.index("disk")
TINY = {"height": 72, "width": 56, "train": 16, "validation": 8, "test": 8}


def _scenes(count, height=64, width=64, first_seed=0):
    seeds = range(first_seed, first_seed + count)
    return [shapes.render_scene(seed, height, width) for seed in seeds]


def _components(label):
    """Connected (4-neighbour) same-label components: an id per pixel."""
    height, width = label.shape
    ids = np.arange(label.size).reshape(label.shape)
    padded_label = np.pad(label.astype(int), 1, constant_values=-1)
    while True:
        padded_ids = np.pad(ids, 1, constant_values=-1)
        new = ids.copy()
        for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
            window = np.s_[1 + dy:1 + dy + height, 1 + dx:1 + dx + width]
            same = padded_label[window] == label
            new = np.maximum(new, np.where(same, padded_ids[window], -1))
        if np.array_equal(new, ids):
            return ids
        ids = new


def _erode(mask, radius):
    """Pixels whose (2 radius + 1)^2 square neighbourhood lies inside mask."""
    size = 2 * radius + 1
    padded = np.pad(mask, radius, constant_values=False)
    windows = np.lib.stride_tricks.sliding_window_view(padded, (size, size))
    return windows.all(axis=(-2, -1))


def test_class_names():
    assert shapes.CLASS_NAMES[0] == "background"
    assert shapes.NUM_CLASSES == len(shapes.CLASS_NAMES) == len(set(shapes.CLASS_NAMES))
    assert shapes.NUM_CLASSES >= 6


def test_render_scene_deterministic_shapes_and_dtypes():
    image, label = shapes.render_scene(7, 48, 40)
    again_image, again_label = shapes.render_scene(7, 48, 40)
    other_image, other_label = shapes.render_scene(8, 48, 40)
    assert image.shape == (48, 40, 3) and image.dtype == np.uint8
    assert label.shape == (48, 40) and label.dtype == np.uint8
    assert image.tobytes() == again_image.tobytes()
    assert label.tobytes() == again_label.tobytes()
    assert not np.array_equal(image, other_image)


def test_labels_in_range_and_every_class_appears():
    labels = np.stack([label for _, label in _scenes(50)])
    assert labels.max() < shapes.NUM_CLASSES
    counts = np.bincount(labels.ravel(), minlength=shapes.NUM_CLASSES)
    assert (counts > 0).all(), dict(zip(shapes.CLASS_NAMES, counts))
    assert 0.4 < counts[0] / counts.sum() < 0.95


def _region_colours(scenes):
    """Mean colour and class of every (scene, object class) region."""
    colours, classes = [], []
    for image, label in scenes:
        for class_id in np.unique(label[label > 0]):
            colours.append(image[label == class_id].mean(axis=0))
            classes.append(class_id)
    return np.array(colours), np.array(classes)


def test_colour_does_not_identify_class():
    colours, classes = _region_colours(_scenes(300))
    half = len(classes) // 2
    object_classes = np.arange(1, shapes.NUM_CLASSES)
    centroids = np.stack([colours[:half][classes[:half] == c].mean(axis=0) for c in object_classes])
    assert np.linalg.norm(centroids - colours.mean(axis=0), axis=1).max() < 30
    distances = np.linalg.norm(colours[half:, None] - centroids[None], axis=-1)
    accuracy = np.mean(object_classes[distances.argmin(axis=1)] == classes[half:])
    assert accuracy < 1 / len(object_classes) + 0.12


def test_small_objects_exist():
    small = 0
    for _, label in _scenes(50):
        ids = _components(label)
        inner = np.zeros_like(label, bool)
        inner[1:-1, 1:-1] = True
        for class_id in range(1, shapes.NUM_CLASSES):
            if class_id == BAR:
                continue
            component_ids, areas = np.unique(ids[label == class_id], return_counts=True)
            for component_id, area in zip(component_ids, areas):
                small += area <= 20 and inner[ids == component_id].all()
    assert small >= 5


def test_bars_are_thin():
    labels = [label for _, label in _scenes(50, 112, 112)]
    bar_pixels = sum(int((label == BAR).sum()) for label in labels)
    thick_bar = sum(int(_erode(label == BAR, 2).sum()) for label in labels)
    disk_pixels = sum(int((label == DISK).sum()) for label in labels)
    thick_disk = sum(int(_erode(label == DISK, 2).sum()) for label in labels)
    assert bar_pixels > 0
    assert thick_bar / bar_pixels < 0.02
    assert thick_disk / disk_pixels > 0.3


def test_some_bars_are_one_pixel_wide():
    hits = 0
    for _, label in _scenes(50):
        bar = label == BAR
        left, right = np.roll(bar, 1, axis=1), np.roll(bar, -1, axis=1)
        up, down = np.roll(bar, 1, axis=0), np.roll(bar, -1, axis=0)
        hits += int((bar & ((~left & ~right) | (~up & ~down)))[1:-1, 1:-1].sum())
    assert hits >= 10


def test_example_seeds_are_distinct():
    seeds = {embedded.example_seed(0, split, index)
             for split in embedded.SPLITS for index in range(1000)}
    assert len(seeds) == 3000


@pytest.fixture(scope="module")
def tiny_builder(tmp_path_factory):
    return embedded.prepare(tmp_path_factory.mktemp("tfds"), config="tiny")


def _examples(builder, split):
    source = builder.as_data_source(split)
    return [source[i] for i in range(len(source))]


def test_builder_metadata(tiny_builder):
    assert tiny_builder.name == "fcn_shapes"
    assert str(tiny_builder.version) == "1.0.0"
    assert tiny_builder.info.metadata["class_names"] == list(shapes.CLASS_NAMES)


@pytest.mark.parametrize("split", embedded.SPLITS)
def test_builder_round_trip(tiny_builder, split):
    examples = _examples(tiny_builder, split)
    assert len(examples) == TINY[split]
    indices = []
    for example in examples:
        id_split, index = embedded.parse_example_id(example["id"])
        assert id_split == split
        indices.append(index)
        image, label = shapes.render_scene(
            embedded.example_seed(0, split, index), TINY["height"], TINY["width"])
        assert example["image"].shape == (TINY["height"], TINY["width"], 3)
        assert example["label"].shape == (TINY["height"], TINY["width"], 1)
        assert example["image"].tobytes() == image.tobytes()
        assert example["label"].tobytes() == label.tobytes()
    assert sorted(indices) == list(range(TINY[split]))


def test_splits_are_disjoint(tiny_builder):
    train = {example["image"].tobytes() for example in _examples(tiny_builder, "train")}
    validation = {example["image"].tobytes() for example in _examples(tiny_builder, "validation")}
    assert len(train) == TINY["train"] and len(validation) == TINY["validation"]
    assert not train & validation


def test_prepare_reuses_files(tiny_builder):
    files = sorted(pathlib.Path(tiny_builder.data_path).iterdir())
    stamps = [f.stat().st_mtime_ns for f in files]
    again = embedded.prepare(tiny_builder.data_path.parents[2], config="tiny")
    assert sorted(pathlib.Path(again.data_path).iterdir()) == files
    assert [f.stat().st_mtime_ns for f in files] == stamps
    assert again.info.metadata["class_names"] == list(shapes.CLASS_NAMES)
    assert len(again.as_data_source("test")) == TINY["test"]


def test_no_tensorflow(tiny_builder):
    _examples(tiny_builder, "validation")
    assert "tensorflow" not in sys.modules


STARTING_TOGETHER = {  # python -c scripts that open a dataset in the data dir sys.argv[1]
    "fcn_shapes": ("import ml_collections, sys; from fcn_jax import data; "
                   "c = ml_collections.ConfigDict({'data': {'name': 'fcn_shapes', "
                   "'builder_config': 'tiny', 'data_dir': sys.argv[1]}}); "
                   "print(len(data.build(c).split('train')))", "16"),
    "fcn_objects": ("import sys; from configs import classifier; from fcn_jax import pretrain; "
                    "c = classifier.get_config('vgg16,quick'); c.data.data_dir = sys.argv[1]; "
                    "print(len(pretrain.load_data(c)['train'][1]))", "64")}


@pytest.mark.parametrize("dataset", sorted(STARTING_TOGETHER))
def test_processes_starting_together_prepare_the_dataset_once(dataset, tmp_path):
    """A sweep's parallel trials, classifiers pretrained side by side (or a job's hosts) open
    a dataset nobody has prepared yet at the same moment: one prepares it, the others wait and
    reuse it; none fails renaming its copy onto the finished one."""
    import subprocess

    script, train_size = STARTING_TOGETHER[dataset]
    root = pathlib.Path(__file__).resolve().parents[1]
    procs = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], cwd=root,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(3)]
    results = [(p.wait(timeout=300), p.stdout.read(), p.stderr.read()) for p in procs]
    for code, out, err in results:
        assert code == 0, err[-2000:]
        assert out.strip().splitlines()[-1] == train_size
    assert not list(tmp_path.glob(f"{dataset}/tiny/incomplete*"))
