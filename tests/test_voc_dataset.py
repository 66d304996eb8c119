"""The ``voc_sbd`` builder on tiny fixture trees laid out like the extracted VOC 2012 and SBD
archives: real JPEGs, palette PNGs with void borders, SBD ``.mat`` structs, split lists."""

import hashlib
import os
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest
import scipy.io
from PIL import Image

from configs import default
from fcn_jax import data
from fcn_jax.data import voc, voc_files
from fcn_jax.data.checked import DataError
from tests.helpers import run_module

VOC_TRAIN = ["2007_000032", "2007_000039"]
VOC_VAL = ["2007_000033", "2007_000042", "2007_000061"]
SBD_TRAIN = ["2008_000002", "2008_000003", "2008_000007"]
VAL2011 = ["2007_000033", "2008_000002", "2007_000042"]  # 2008_000002 is in SBD train
SEG11VALID = ["2007_000033", "2007_000042"]
VOC_IDS = sorted(set(VOC_TRAIN + VOC_VAL + VAL2011))
VOC2011_VAL_LIST = voc_files.SEG11VALID_LISTS[1]


def _shape(ident):
    """20x30 or 30x20, so a transposed image would show."""
    return (20, 30) if int(ident[-2:]) % 2 else (30, 20)


def _rng(ident, source):
    return np.random.default_rng([int(ident.replace("_", "")), source])


def _voc_label(ident):
    """Class ids with a one-pixel void (255) border, as VOC draws object outlines."""
    label = _rng(ident, 0).integers(0, len(voc_files.CLASS_NAMES), _shape(ident), np.uint8)
    label[0], label[-1], label[:, 0], label[:, -1] = 255, 255, 255, 255
    return label


def _sbd_label(ident):
    return _rng(ident, 1).integers(0, len(voc_files.CLASS_NAMES), _shape(ident), np.uint8)


def _voc_palette():
    """The PASCAL VOC colour map: class i's colour interleaves the bits of i."""
    palette = []
    for index in range(256):
        colour, value = [0, 0, 0], index
        for shift in range(7, -1, -1):
            for channel in range(3):
                colour[channel] |= ((value >> channel) & 1) << shift
            value >>= 3
        palette += colour
    return palette


def _write_palette_png(path, label):
    image = Image.frombytes("P", label.shape[::-1], label.tobytes())
    image.putpalette(_voc_palette())
    image.save(path)


def _write_jpeg(path, shape, seed):
    pixels = np.random.default_rng(seed).integers(0, 256, (*shape, 3), np.uint8)
    Image.fromarray(pixels).save(path, quality=90)


def _write_mat(path, label):
    scipy.io.savemat(path, {"GTcls": {"Boundaries": np.zeros(3), "Segmentation": label,
                                      "CategoriesPresent": np.unique(label)}})


def _write_list(path, ids):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{ident}\n" for ident in ids))


def write_tree(root, val_list=VOC2011_VAL_LIST):
    """The extracted archives under root; the VOC 2011 val list goes to val_list."""
    root = pathlib.Path(root)
    voc2012, sbd = root / voc_files.VOC2012, root / voc_files.SBD
    for folder in ("JPEGImages", "SegmentationClass"):
        (voc2012 / folder).mkdir(parents=True)
    for folder in ("img", "cls"):
        (sbd / folder).mkdir(parents=True)
    for seed, ident in enumerate(VOC_IDS):
        _write_jpeg(voc2012 / "JPEGImages" / f"{ident}.jpg", _shape(ident), seed)
        _write_palette_png(voc2012 / "SegmentationClass" / f"{ident}.png", _voc_label(ident))
    for seed, ident in enumerate(SBD_TRAIN, start=100):
        _write_jpeg(sbd / "img" / f"{ident}.jpg", _shape(ident), seed)
        _write_mat(sbd / "cls" / f"{ident}.mat", _sbd_label(ident))
    _write_list(voc2012 / "ImageSets" / "Segmentation" / "train.txt", VOC_TRAIN)
    _write_list(voc2012 / "ImageSets" / "Segmentation" / "val.txt", VOC_VAL)
    _write_list(sbd / "train.txt", SBD_TRAIN)
    _write_list(sbd / "val.txt", VOC_VAL)
    _write_list(root / val_list, VAL2011)
    return root


def _snapshot(root):
    """Every file and folder under root with its modification time (and a file's digest)."""
    return {path: (path.stat().st_mtime_ns,
                   path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest())
            for path in sorted(pathlib.Path(root).rglob("*"))}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    manual = write_tree(tmp_path_factory.mktemp("manual"))
    before = _snapshot(manual)
    data_dir = tmp_path_factory.mktemp("tfds")
    builder = voc.prepare(data_dir, manual_dir=manual)
    return builder, manual, before, data_dir


def _examples(builder, split):
    source = builder.as_data_source(split)
    return {example["id"].decode(): example
            for example in (source[i] for i in range(len(source)))}


def _decoded(path):
    with Image.open(path) as image:
        return np.asarray(image)


def test_splits_hold_the_listed_ids(prepared):
    builder = prepared[0]
    expected = {"sbd_train": SBD_TRAIN, "seg11valid": SEG11VALID, "voc2012_train": VOC_TRAIN,
                "voc2012_val": VOC_VAL}
    assert set(builder.info.splits) == set(expected)
    for split, ids in expected.items():
        assert builder.info.splits[split].num_examples == len(ids)
        assert sorted(_examples(builder, split)) == sorted(ids)


def test_class_names_are_the_21_voc_classes(prepared):
    builder = prepared[0]
    names = builder.info.metadata["class_names"]
    assert builder.name == "voc_sbd"
    assert len(names) == 21 and names[0] == "background" and names[-1] == "tvmonitor"
    assert names[1:4] == ["aeroplane", "bicycle", "bird"] and names[15] == "person"


@pytest.mark.parametrize("split", ["seg11valid", "voc2012_train", "voc2012_val"])
def test_voc_labels_are_palette_indices_with_void_kept(prepared, split):
    builder, manual = prepared[:2]
    for ident, example in _examples(builder, split).items():
        label = example["label"][..., 0]
        assert np.array_equal(label, _voc_label(ident))
        assert (label[0] == 255).all() and (label[1:-1, 1:-1] < 21).all()
        jpeg = manual / voc_files.VOC2012 / "JPEGImages" / f"{ident}.jpg"
        assert np.array_equal(example["image"], _decoded(jpeg))
        assert example["image"].shape == (*_shape(ident), 3)


def test_sbd_labels_come_from_the_mat_files(prepared):
    builder, manual = prepared[:2]
    for ident, example in _examples(builder, "sbd_train").items():
        assert np.array_equal(example["label"][..., 0], _sbd_label(ident))
        jpeg = manual / voc_files.SBD / "img" / f"{ident}.jpg"
        assert np.array_equal(example["image"], _decoded(jpeg))


def test_the_manual_dir_is_left_unchanged(prepared):
    _, manual, before = prepared[:3]
    assert _snapshot(manual) == before


def test_build_reads_the_default_manual_dir_through_checked_sources(tmp_path):
    write_tree(tmp_path / "downloads" / "manual")
    config = default.get_config()
    config.data.name, config.data.data_dir = "voc_sbd", str(tmp_path)
    dataset = data.build(config)
    assert dataset.num_classes == 21
    example = dataset.split("seg11valid")[0]
    assert example["label"].ndim == 2 and example["image"].shape[-1] == 3
    assert np.array_equal(example["label"], _voc_label(example["id"].decode()))


def test_cli_prints_the_split_sizes(prepared, tmp_path):
    """The README's command as a newcomer runs it (``python -m``, a fresh data dir)."""
    manual = prepared[1]
    proc = run_module("fcn_jax.data.voc", "--manual_dir", str(manual), "--data_dir",
                      str(tmp_path / "tfds"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "sbd_train: 3 examples" in proc.stdout and "seg11valid: 2 examples" in proc.stdout


def test_reading_needs_no_tensorflow(prepared):
    _examples(prepared[0], "voc2012_val")
    assert "tensorflow" not in sys.modules


def test_seg11valid_from_the_reference_list_equals_val2011_minus_sbd_train(tmp_path):
    from_reference = write_tree(tmp_path / "reference", val_list=voc_files.SEG11VALID_LISTS[0])
    from_voc2011 = write_tree(tmp_path / "voc2011")
    assert voc_files.split_ids(str(from_reference), "seg11valid") == SEG11VALID
    assert voc_files.split_ids(str(from_voc2011), "seg11valid") == SEG11VALID


def test_a_missing_manual_dir_says_what_to_download(tmp_path):
    missing = tmp_path / "nothing"
    with pytest.raises(FileNotFoundError, match=re.escape(f"{missing} does not exist")) as error:
        voc.prepare(tmp_path / "tfds", manual_dir=missing)
    for archive in ("VOCtrainval_11-May-2012.tar", "benchmark.tgz", "seg11valid.txt"):
        assert archive in str(error.value)


def _remove(path):
    os.remove(path)


def _garbage(path):
    path.write_bytes(b"not a real file" * 10)


def _mat_without_segmentation(path):
    scipy.io.savemat(path, {"GTcls": {"Boundaries": np.zeros(3)}})


def _wrong_size_jpeg(path):
    _write_jpeg(path, (12, 16), 0)


def _rgb_png(path):
    Image.fromarray(np.zeros((30, 20, 3), np.uint8)).save(path)


def _out_of_range_png(path):
    _write_palette_png(path, np.full((30, 20), 21, np.uint8))


def _unlisted_id(path):
    path.write_text(path.read_text() + "2009_999999\n")


VOC_DIR = pathlib.Path(voc_files.VOC2012)
SBD_DIR = pathlib.Path(voc_files.SBD)
DAMAGE = {
    "missing jpeg": (VOC_DIR / "JPEGImages" / "2007_000061.jpg", _remove,
                     FileNotFoundError),
    "missing mat": (SBD_DIR / "cls" / "2008_000003.mat", _remove, FileNotFoundError),
    "missing sbd jpeg": (SBD_DIR / "img" / "2008_000007.jpg", _remove, FileNotFoundError),
    "corrupt mat": (SBD_DIR / "cls" / "2008_000003.mat", _garbage, DataError),
    "mat without GTcls.Segmentation": (SBD_DIR / "cls" / "2008_000002.mat",
                                       _mat_without_segmentation, DataError),
    "corrupt jpeg": (VOC_DIR / "JPEGImages" / "2007_000039.jpg", _garbage, DataError),
    "corrupt png": (VOC_DIR / "SegmentationClass" / "2007_000039.png", _garbage,
                    DataError),
    "size mismatch": (VOC_DIR / "JPEGImages" / "2007_000042.jpg", _wrong_size_jpeg,
                      DataError),
    "rgb label": (VOC_DIR / "SegmentationClass" / "2007_000032.png", _rgb_png,
                  DataError),
    "label out of range": (VOC_DIR / "SegmentationClass" / "2007_000032.png",
                           _out_of_range_png, DataError),
    "missing list": (VOC_DIR / "ImageSets" / "Segmentation" / "train.txt", _remove,
                     FileNotFoundError),
    "listed id without files": (SBD_DIR / "train.txt", _unlisted_id, FileNotFoundError),
}


@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_a_missing_or_malformed_file_is_named(tmp_path, case):
    relative, damage, error_type = DAMAGE[case]
    manual = write_tree(tmp_path / "manual")
    damage(manual / relative)
    named = (manual / SBD_DIR / "img" / "2009_999999.jpg" if case == "listed id without files"
             else manual / relative)
    with pytest.raises(error_type, match=re.escape(str(named))):
        voc.prepare(tmp_path / "tfds", manual_dir=manual)


def test_size_mismatch_names_image_and_label(tmp_path):
    manual = write_tree(tmp_path / "manual")
    jpeg, *_ = DAMAGE["size mismatch"]
    _wrong_size_jpeg(manual / jpeg)
    label = manual / VOC_DIR / "SegmentationClass" / "2007_000042.png"
    with pytest.raises(DataError, match=re.escape(f"is 12x16 but its label map {label} is 30x20")):
        voc.prepare(tmp_path / "tfds", manual_dir=manual)


def test_without_either_val2011_list_the_error_names_both(tmp_path):
    manual = write_tree(tmp_path / "manual")
    (manual / VOC2011_VAL_LIST).unlink()
    with pytest.raises(FileNotFoundError) as error:
        voc.prepare(tmp_path / "tfds", manual_dir=manual)
    for name in voc_files.SEG11VALID_LISTS:
        assert str(manual / name) in str(error.value)


def test_the_documented_preparation_command_answers_help():
    """``python -m fcn_jax.data.voc`` imports the module twice (as fcn_jax.data.voc and as
    __main__); the builder's name must not be registered twice."""
    proc = subprocess.run([sys.executable, "-m", "fcn_jax.data.voc", "--help"],
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "--manual_dir" in proc.stdout
