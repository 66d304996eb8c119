"""Input pipeline: augmentation keeps image and label aligned, eval pads with ignore labels."""

import jax
import numpy as np
import pytest

from fcn_jax import data
from fcn_jax.data import augment, pipeline
from tests.helpers import tiny_config


def coded_example(height=30, width=20):
    """An image whose pixels encode their label, so alignment can be checked exactly."""
    label = (np.arange(height * width).reshape(height, width) % 7).astype(np.uint8)
    image = np.stack([label * 30, label * 30, label * 30], axis=-1).astype(np.uint8)
    return image, label


@pytest.mark.parametrize("seed", range(5))
def test_crop_and_flip_keep_image_and_label_aligned(seed):
    image, label = coded_example()
    rng = np.random.default_rng(seed)
    out_image, out_label = augment.random_scale_crop_flip(
        image, label, rng, crop_size=24, scale_range=(1.0, 1.0), flip=True)
    assert out_image.shape == (24, 24, 3) and out_label.shape == (24, 24)
    valid = out_label != 255
    assert valid.any() and (~valid).any()  # width 20 < crop 24: padding must appear
    np.testing.assert_array_equal(out_image[valid][:, 0], out_label[valid] * 30)
    np.testing.assert_array_equal(out_image[~valid], np.broadcast_to(augment.PAD_RGB,
                                                                     out_image[~valid].shape))


def test_rescale_uses_nearest_labels():
    image, label = coded_example()
    _, out_label = augment.resize(image, label, 1.7)
    assert out_label.shape == (51, 34)
    assert set(np.unique(out_label)) <= set(np.unique(label))


def test_bad_scale_range_is_a_clear_error():
    image, label = coded_example()
    with pytest.raises(ValueError, match=r"data.scale_range=\(1.5, 1.0\)"):
        augment.random_scale_crop_flip(image, label, np.random.default_rng(0), crop_size=8,
                                       scale_range=(1.5, 1.0), flip=False)


def test_eval_batches_pad_to_the_stride_with_ignore_labels():
    examples = [coded_example(30, 20), coded_example(33, 18)]
    batch = pipeline.pad_batch(examples, 32, 3)
    assert batch["image"].shape == (3, 64, 32, 3) and batch["label"].shape == (3, 64, 32)
    np.testing.assert_array_equal(batch["label"][0, :30, :20], examples[0][1])
    assert np.all(batch["label"][0, 30:] == 255) and np.all(batch["label"][0, :, 20:] == 255)
    assert np.all(batch["label"][2] == 255)  # filler example: fully ignored
    np.testing.assert_array_equal(batch["image"][1, :33, :18], examples[1][0])
    outside = np.ones((3, 64, 32), bool)
    outside[0, :30, :20] = outside[1, :33, :18] = False
    np.testing.assert_array_equal(batch["image"][outside],
                                  np.broadcast_to(augment.PAD_RGB, (outside.sum(), 3)))


def indexed_examples(count):
    """Records whose constant image is 10 x their index; labels stored [H, W, 1] as tfds may."""
    return [{"image": np.full((5 + i, 4, 3), 10 * i, np.uint8),
             "label": np.full((5 + i, 4, 1), i % 3, np.uint8)} for i in range(count)]


def test_decode_drops_a_trailing_label_channel():
    image, label = pipeline.decode(indexed_examples(3)[2])
    assert image.shape == (7, 4, 3) and label.shape == (7, 4) and (label == 2).all()


@pytest.mark.parametrize("count, num_batches", [(4, 1), (5, 2), (7, 2)])
def test_eval_batches_of_two_processes_cover_the_split_once_in_step(monkeypatch, count,
                                                                    num_batches):
    """Each process takes every other example; one that runs out yields a fully ignored
    filler so both take the same number of evaluation steps (batches of 2)."""
    seen, lengths = [], []
    for process in (0, 1):
        monkeypatch.setattr(jax, "process_count", lambda: 2)
        monkeypatch.setattr(jax, "process_index", lambda p=process: p)
        batches = list(pipeline.eval_batches(indexed_examples(count), local_batch=2, stride=4))
        monkeypatch.undo()
        lengths.append(len(batches))
        for batch in batches:
            for image, label in zip(batch["image"], batch["label"]):
                if (label != 255).any():
                    seen.append((process, int(image[0, 0, 0]) // 10))
    assert lengths == [num_batches, num_batches]
    assert sorted(i for _, i in seen) == list(range(count))
    assert all(i % 2 == process for process, i in seen)


def test_an_empty_split_is_named_and_one_example_is_enough():
    one = pipeline.train_dataset(indexed_examples(1), local_batch=2, seed=0, crop_size=4,
                                 scale_range=(1, 1), flip=False)
    assert (one[0]["image"] == 0).all()  # the single example, twice
    with pytest.raises(ValueError, match="the training split is empty"):
        pipeline.train_dataset([], local_batch=2, seed=0, crop_size=8, scale_range=(1, 1),
                               flip=False)
    with pytest.raises(ValueError, match="the evaluation split is empty"):
        next(pipeline.eval_batches([], local_batch=2, stride=4))


def test_training_data_is_indexed_by_step(tiny_data_dir):
    c = tiny_config()
    c.data.data_dir = tiny_data_dir
    ds = data.build(c)
    train = pipeline.train_dataset(ds.split("train"), local_batch=4, seed=3, crop_size=32,
                                   scale_range=(0.8, 1.2), flip=True)
    resumed = pipeline.train_iterator(train, 5, num_threads=2, prefetch=2)
    for step in range(5, 9):
        expected = train[step]
        got = next(resumed)
        np.testing.assert_array_equal(got["image"], expected["image"])
        np.testing.assert_array_equal(got["label"], expected["label"])
    # Every epoch is a new permutation: the batches of epoch 0 and 1 differ.
    epoch = len(ds.split("train")) // 4
    assert not np.array_equal(train[0]["image"], train[epoch]["image"])


def test_eval_covers_every_example_once(tiny_data_dir):
    c = tiny_config()
    c.data.data_dir = tiny_data_dir
    source = data.build(c).split("validation")
    batches = list(pipeline.eval_batches(source, local_batch=3, stride=32))
    valid = sum(int((b["label"] != 255).sum()) for b in batches)
    assert valid == sum(int((pipeline.decode(source[i])[1] != 255).sum())
                        for i in range(len(source)))
    assert len(batches) == -(-len(source) // 3)


def test_unknown_dataset_and_split_are_clear_errors(tiny_data_dir):
    c = tiny_config()
    c.data.data_dir = tiny_data_dir
    ds = data.build(c)
    with pytest.raises(ValueError, match="split 'valid' not in dataset 'fcn_shapes'"):
        ds.split("valid")
    c.data.name = "voc"
    with pytest.raises(ValueError, match="data.name='voc'"):
        data.build(c)
