"""The order of training examples (FCN paper, section 4.3: SGD over shuffled images): a new
permutation every epoch, every example once per epoch, disjoint per-process shares that make up
the global batch, and a resumed iterator continuing the same sequence.

Each example is a constant image whose value is its index, so augmentation (crop, flip, scale
1) keeps it recognisable in every batch."""

import grain
import jax
import numpy as np
import pytest

from fcn_jax.data import pipeline

NUM_EXAMPLES, GLOBAL_BATCH = 16, 4
STEPS_PER_EPOCH = NUM_EXAMPLES // GLOBAL_BATCH


def source():
    return [{"image": np.full((12, 10, 3), 10 * i, np.uint8),
             "label": np.full((12, 10), i % 5, np.uint8), "id": f"train_{i}"}
            for i in range(NUM_EXAMPLES)]


def dataset(local_batch=GLOBAL_BATCH, seed=0):
    return pipeline.train_dataset(source(), local_batch=local_batch, seed=seed, crop_size=8,
                                  scale_range=(1.0, 1.0), flip=True)


def example_ids(batch) -> list[int]:
    images = np.asarray(batch["image"])
    assert (images == images[:, :1, :1, :1]).all()  # constant images stay constant
    return [int(v) // 10 for v in images[:, 0, 0, 0]]


def sequence(data, steps, start=0):
    iterator = pipeline.train_iterator(data, start, num_threads=2, prefetch=2)
    return [example_ids(next(iterator)) for _ in range(steps)]


def test_every_epoch_is_a_new_permutation_of_every_example():
    batches = sequence(dataset(), 3 * STEPS_PER_EPOCH)
    epochs = [sum(batches[e * STEPS_PER_EPOCH:(e + 1) * STEPS_PER_EPOCH], [])
              for e in range(3)]
    for order in epochs:
        assert sorted(order) == list(range(NUM_EXAMPLES))  # each example exactly once
    assert len({tuple(order) for order in epochs}) == 3    # reshuffled every epoch
    assert epochs[0] != list(range(NUM_EXAMPLES))


def test_the_seed_changes_the_order():
    assert sequence(dataset(seed=0), STEPS_PER_EPOCH) != sequence(dataset(seed=1),
                                                                  STEPS_PER_EPOCH)


def test_a_resumed_iterator_continues_the_same_sequence_mid_epoch():
    whole = sequence(dataset(), 2 * STEPS_PER_EPOCH)
    assert sequence(dataset(), 2 * STEPS_PER_EPOCH - 3, start=3) == whole[3:]


@pytest.mark.parametrize("num_processes, local_batch", [(2, 2), (2, 3), (3, 2)])
def test_process_shares_are_disjoint_and_make_up_the_global_batch(monkeypatch, num_processes,
                                                                   local_batch):
    """Process p takes positions [p * local, (p + 1) * local) of every global batch (batch
    sizes that are not powers of two, so an offset ``|`` or ``^`` its position would show)."""
    num_steps = 2 * (NUM_EXAMPLES // (num_processes * local_batch))
    whole = sequence(dataset(local_batch=num_processes * local_batch), num_steps)
    shares = []
    for process in range(num_processes):
        monkeypatch.setattr(jax, "process_count", lambda: num_processes)
        monkeypatch.setattr(jax, "process_index", lambda p=process: p)
        shares.append(sequence(dataset(local_batch=local_batch), num_steps))
        monkeypatch.undo()
    for step, batch in enumerate(whole):
        assert sum((share[step] for share in shares), []) == batch  # in process order


def test_a_process_slice_of_a_finite_dataset():
    """Process 1 of 2, batches of 3 per process: elements 3-5, then 9-11 of every 6; the last
    incomplete global batch (element 12) is dropped."""
    parent = grain.MapDataset.range(13)
    share = pipeline.ProcessSlice(parent, global_batch=6, local_batch=3, offset=3)
    assert len(share) == 6 and [share[i] for i in range(6)] == [3, 4, 5, 9, 10, 11]


@pytest.mark.parametrize("steps", [1, STEPS_PER_EPOCH + 1])
def test_labels_travel_with_their_images(steps):
    iterator = pipeline.train_iterator(dataset(), 0, num_threads=1, prefetch=1)
    for _ in range(steps):
        batch = next(iterator)
        for index, label in zip(example_ids(batch), np.asarray(batch["label"])):
            assert (label == index % 5).all()
