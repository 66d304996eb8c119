"""Grain input pipelines over ``tfds.data_source`` (FCN paper, section 4.3).

Training: shuffle (a new order every epoch), random scale / crop / flip, batch; each process
takes its slice of every global batch. The dataset is indexed by step, so resuming at step s
reads exactly the batches an uninterrupted run would (the data-iterator position is the step).
Evaluation: whole images, no augmentation, padded to a multiple of the stride with ignore
labels.
"""

from collections.abc import Iterator, Sequence

import grain
import jax
import numpy as np

from fcn_jax.data import augment
from fcn_jax.losses import IGNORE_LABEL


def decode(example: dict) -> tuple[np.ndarray, np.ndarray]:
    """A decoded tfds record -> (uint8 image [H,W,3], uint8 label [H,W])."""
    image = np.asarray(example["image"], np.uint8)
    label = np.asarray(example["label"], np.uint8)
    if label.ndim == 3:
        label = label[..., 0]
    return image, label


class ProcessSlice(grain.MapDataset):
    """This process's share of every global batch: element j is element
    ``(j // local_batch) * global_batch + offset + j % local_batch`` of the parent."""

    def __init__(self, parent: grain.MapDataset, *, global_batch: int, local_batch: int,
                 offset: int):
        super().__init__(parent)
        self.global_batch, self.local_batch, self.offset = global_batch, local_batch, offset

    def __len__(self) -> int:
        return len(self._parent) // self.global_batch * self.local_batch

    def __getitem__(self, index):
        if isinstance(index, slice):
            return self.slice(index)
        batch, position = divmod(index, self.local_batch)
        return self._parent[batch * self.global_batch + self.offset + position]


def train_dataset(source: Sequence, *, local_batch: int, seed: int, crop_size: int,
                  scale_range: tuple, flip: bool) -> grain.MapDataset:
    """An infinite MapDataset of augmented batches; element s is the batch of step s.

    Every process shuffles and augments the same global sequence of examples and takes its
    own slice of each global batch, so the global batch does not depend on the process count.
    """
    if len(source) == 0:
        raise ValueError("the training split is empty")

    def augment_example(example, rng):
        image, label = augment.random_scale_crop_flip(
            *decode(example), rng, crop_size=crop_size, scale_range=tuple(scale_range),
            flip=flip)
        return {"image": image, "label": label}

    examples = (grain.MapDataset.source(source).seed(seed).shuffle().repeat()
                .random_map(augment_example))
    if jax.process_count() > 1:
        examples = ProcessSlice(examples, global_batch=local_batch * jax.process_count(),
                                local_batch=local_batch,
                                offset=jax.process_index() * local_batch)
    return examples.batch(local_batch, drop_remainder=True)


def train_iterator(dataset: grain.MapDataset, start_step: int, *, num_threads: int,
                   prefetch: int) -> Iterator[dict]:
    """Iterate batches from ``start_step`` on, read ahead by ``num_threads`` threads."""
    options = grain.ReadOptions(num_threads=num_threads, prefetch_buffer_size=prefetch)
    return iter(dataset[start_step:].to_iter_dataset(options))


def pad_batch(examples: list[tuple[np.ndarray, np.ndarray]], stride: int,
              batch_size: int) -> dict:
    """Stack whole images padded to a common multiple of ``stride``; fill with ignored ones."""
    height = augment.round_up(max(label.shape[0] for _, label in examples), stride)
    width = augment.round_up(max(label.shape[1] for _, label in examples), stride)
    images = np.broadcast_to(augment.PAD_RGB, (batch_size, height, width, 3)).copy()
    labels = np.full((batch_size, height, width), IGNORE_LABEL, np.uint8)
    for i, (image, label) in enumerate(examples):
        images[i, :label.shape[0], :label.shape[1]] = image
        labels[i, :label.shape[0], :label.shape[1]] = label
    return {"image": images, "label": labels}


def eval_batches(source: Sequence, *, local_batch: int, stride: int) -> Iterator[dict]:
    """This process's share of a split, as padded batches; every process yields as many."""
    count = len(source)
    if count == 0:
        raise ValueError("the evaluation split is empty")
    index = np.arange(jax.process_index(), count, jax.process_count())
    per_process = -(-count // jax.process_count())
    num_batches = -(-per_process // local_batch)
    for b in range(num_batches):
        chunk = index[b * local_batch:(b + 1) * local_batch]
        examples = [decode(source[int(i)]) for i in chunk]
        if not examples:  # this process ran out: one fully ignored image keeps it in step
            examples = [(np.zeros((stride, stride, 3), np.uint8),
                         np.full((stride, stride), IGNORE_LABEL, np.uint8))]
        yield pad_batch(examples, stride, local_batch)
