"""Your own data (fcn_jax/data/folder.py): a generated folder read back exactly, its splits by
the documented hash rule or by split lists, every bad file named, and the commands end to end
(browse, train, predict)."""

import hashlib
import os

import numpy as np
import pytest
from PIL import Image

from configs import default
from fcn_jax import config_checks, data
from tests.helpers import run_module

CLASSES = ("background", "square", "disc")


def make_folder(root, count: int = 10, seed: int = 0) -> dict:
    """images/ (PNG, one grey, one RGBA, sizes differ), masks/ (palette and grey PNGs),
    classes.txt; returns {name: (RGB image, labels)} as they should read back."""
    rng = np.random.default_rng(seed)
    os.makedirs(root / "images"), os.makedirs(root / "masks")
    (root / "classes.txt").write_text("\n".join(CLASSES) + "\n\n")
    expected = {}
    for i in range(count):
        name, height, width = f"photo{i:02d}", 36 + 3 * i, 44
        image = rng.integers(0, 256, (height, width, 3)).astype(np.uint8)
        labels = rng.integers(0, len(CLASSES), (height, width)).astype(np.uint8)
        labels[0] = 255
        stored = Image.fromarray(image)
        if i == 1:
            stored = stored.convert("L")
            image = np.asarray(stored.convert("RGB"))
        elif i == 2:
            stored = stored.convert("RGBA")
        stored.save(root / "images" / f"{name}.png")
        mask = Image.fromarray(labels)
        if i % 2:
            mask = mask.convert("P")  # a palette PNG whose indices are the classes
        mask.save(root / "masks" / f"{name}.png")
        expected[name] = (image, labels)
    return expected


def folder_config(path, data_dir, **fields):
    config = default.get_config("smoke")
    config.data.update(name="folder", folder=str(path), data_dir=str(data_dir), **fields)
    return config


def read_split(dataset, split: str) -> dict:
    source = dataset.split(split)
    examples = [source[i] for i in range(len(source))]
    return {str(e["id"].decode() if isinstance(e["id"], bytes) else e["id"]):
            (np.asarray(e["image"]), np.asarray(e["label"])) for e in examples}


def test_a_folder_reads_back_exactly_split_by_the_hash_of_each_name(tmp_path):
    expected = make_folder(tmp_path / "mine")
    dataset = data.build(folder_config(tmp_path / "mine", tmp_path / "tfds",
                                       folder_validation_fraction=0.3))
    assert dataset.class_names == CLASSES
    by_hash = {n for n in expected
               if int(hashlib.sha1(n.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF < 0.3}
    validation, train = read_split(dataset, "validation"), read_split(dataset, "train")
    assert set(validation) == by_hash and set(train) == set(expected) - by_hash
    for name, (image, labels) in {**train, **validation}.items():
        np.testing.assert_array_equal(image, expected[name][0])
        np.testing.assert_array_equal(labels, expected[name][1])


def test_split_lists_decide_and_a_changed_folder_is_prepared_again(tmp_path):
    make_folder(tmp_path / "mine", count=6)
    (tmp_path / "mine" / "train.txt").write_text("photo00\nphoto01\nphoto02\n")
    (tmp_path / "mine" / "validation.txt").write_text("photo05\n")
    config = folder_config(tmp_path / "mine", tmp_path / "tfds")
    dataset = data.build(config)
    assert sorted(read_split(dataset, "train")) == ["photo00", "photo01", "photo02"]
    assert list(read_split(dataset, "validation")) == ["photo05"]
    (tmp_path / "mine" / "validation.txt").write_text("photo04\nphoto05\n")
    assert sorted(read_split(data.build(config), "validation")) == ["photo04", "photo05"]


def spoil(root, what: str) -> str:
    """Break one thing of a good folder; the text its error must contain."""
    masks = root / "masks"
    if what == "mask size":
        Image.fromarray(np.zeros((5, 5), np.uint8)).save(masks / "photo03.png")
        return f"{masks / 'photo03.png'} is 5x5 but its image"
    if what == "colour mask":
        Image.fromarray(np.zeros((45, 44, 3), np.uint8)).save(masks / "photo03.png")
        return f"{masks / 'photo03.png'} is a RGB image; a mask holds class indices"
    if what == "class out of range":
        Image.fromarray(np.full((45, 44), 7, np.uint8)).save(masks / "photo03.png")
        return f"{masks / 'photo03.png'} holds class 7, but classes.txt names 3 classes"
    if what == "missing mask":
        os.remove(masks / "photo03.png")
        return f"{masks / 'photo03.png'} not found (1 images have no mask)"
    if what == "no classes":
        os.remove(root / "classes.txt")
        return f"{root / 'classes.txt'} not found: lay it out as FOLDER/images/NAME.jpg"
    if what == "unreadable image":
        (root / "images" / "photo03.png").write_bytes(b"not a png")
        return "cannot read"
    (root / "train.txt").write_text("photo00\nphoto99\n")
    (root / "validation.txt").write_text("photo01\n")
    return f"{root / 'train.txt'} lists 'photo99', which has no image"


@pytest.mark.parametrize("what", ["mask size", "colour mask", "class out of range",
                                  "missing mask", "no classes", "unreadable image",
                                  "unknown listed name"])
def test_each_bad_file_is_named(tmp_path, what):
    make_folder(tmp_path / "mine", count=6)
    message = spoil(tmp_path / "mine", what)
    with pytest.raises((ValueError, FileNotFoundError)) as error:
        data.build(folder_config(tmp_path / "mine", tmp_path / "tfds"))
    assert message in str(error.value)


def test_the_folder_setting_is_checked_first(tmp_path):
    with pytest.raises(ValueError, match="data.name='folder' needs data.folder"):
        data.build(folder_config("", tmp_path / "tfds"))
    with pytest.raises(FileNotFoundError, match="data.folder='/nowhere': no such directory"):
        data.build(folder_config("/nowhere", tmp_path / "tfds"))
    with pytest.raises(ValueError, match="data.folder_validation_fraction = 1.0: expected a "
                                         r"number in \(0, 1\)"):
        config_checks.validate(folder_config(tmp_path, tmp_path, folder_validation_fraction=1.0))


@pytest.mark.slow
def test_browse_train_and_predict_on_your_own_folder(tmp_path):
    """The documented journey: browse the folder, train the smoke config on it, label it."""
    make_folder(tmp_path / "mine", count=12)
    flags = ["--config.data.name=folder", f"--config.data.folder={tmp_path / 'mine'}",
             f"--config.data.data_dir={tmp_path / 'tfds'}"]
    browse = run_module("fcn_jax.data.browse", "--config", "configs/default.py:smoke",
                        "--split", "train", "--count", "3", "--output",
                        str(tmp_path / "browse.png"), *flags)
    assert browse.returncode == 0, browse.stderr[-2000:]
    assert "folder train: 3 examples drawn" in browse.stdout
    assert Image.open(tmp_path / "browse.png").size[0] > 100
    again = run_module("fcn_jax.data.browse", "--output", str(tmp_path / "browse.png"), *flags)
    assert again.returncode == 2 and "exists; choose another --output" in again.stderr

    trained = run_module("fcn_jax.main", "--config", "configs/default.py:smoke", "--workdir",
                         str(tmp_path / "run"), *flags)
    assert trained.returncode == 0, trained.stderr[-2000:]
    labelled = run_module("fcn_jax.predict", "--workdir", str(tmp_path / "run"), "--input",
                          str(tmp_path / "mine" / "images"), "--output", str(tmp_path / "out"),
                          "--raw")
    assert labelled.returncode == 0, labelled.stderr[-2000:]
    label = np.asarray(Image.open(tmp_path / "out" / "photo04_label.png"))
    assert label.shape == (48, 44) and label.max() < len(CLASSES)
