"""Median-frequency class balancing (FCN paper, section 4.4) against a per-class loop, and
through the trainer on the tiny dataset's training labels."""

import numpy as np
import pytest

from fcn_jax import class_balance, config_checks, run
from fcn_jax.data import pipeline
from tests.helpers import tiny_config


def loop_median_frequency(labels: list, num_classes: int) -> list:
    """Eigen & Fergus's weights by loops: for each class, its pixels over the pixels of the
    images it appears in; each weight the median of those frequencies over this one."""
    freq = {}
    for c in range(num_classes):
        mine = total = 0
        for label in labels:
            valid = label[label != 255]
            if (valid == c).any():
                mine += int((valid == c).sum())
                total += valid.size
        if mine:
            freq[c] = mine / total
    median = float(np.median(list(freq.values())))
    return [median / freq[c] if c in freq else 0.0 for c in range(num_classes)]


def test_median_frequency_weights_match_the_loop():
    rng = np.random.default_rng(0)
    labels = [rng.choice([0, 0, 0, 1, 2, 255], size=(9, 7)).astype(np.uint8) for _ in range(5)]
    labels.append(np.full((4, 4), 4, np.uint8))           # class 4 alone in one image
    labels[0][0, :3] = 5                                   # class 5 in one image, 3 pixels
    weights = class_balance.median_frequency_weights(*class_balance.label_counts(labels, 7))
    assert weights == pytest.approx(loop_median_frequency(labels, 7), rel=1e-12)
    assert weights[3] == 0.0 and weights[6] == 0.0         # never seen: no weight
    with pytest.raises(ValueError, match="no labelled pixel"):
        class_balance.median_frequency_weights(*class_balance.label_counts(
            [np.full((2, 2), 255, np.uint8)], 3))


def test_the_trainer_weights_the_loss_by_its_training_labels(tiny_data_dir):
    config = tiny_config("fcn32s")
    config.data.data_dir = tiny_data_dir
    config.loss.balance = "median_frequency"
    trainer = run.Run(config, "")
    source = trainer.dataset.split("train")
    labels = [pipeline.decode(source[i])[1] for i in range(len(source))]
    weights = trainer.loss_class_weights(config.loss)
    assert weights == pytest.approx(loop_median_frequency(labels, trainer.num_classes), rel=1e-9)
    assert min(weights) < 1 < max(weights)


def test_only_training_reads_the_training_labels_for_the_weights(tiny_data_dir, monkeypatch):
    config = tiny_config("fcn32s")
    config.data.data_dir = tiny_data_dir
    config.loss.balance = "median_frequency"

    def counted(*_):
        raise AssertionError("the training labels were read")
    monkeypatch.setattr(run.class_balance, "label_counts", counted)
    trainer = run.Run(config, "")  # evaluation and prediction need no class weights
    trainer.evaluate(trainer.parallel.put_replicated(trainer.state["params"]), "validation")
    with pytest.raises(AssertionError, match="training labels were read"):
        trainer.train_step


def test_balance_with_explicit_weights_or_an_unknown_name_is_refused(tiny_data_dir):
    config = tiny_config("fcn32s")
    config.data.data_dir = tiny_data_dir
    config.loss.balance, config.loss.class_weights = "median_frequency", (1.0,) * 7
    with pytest.raises(ValueError, match=r"leave loss.class_weights=\(\)"):
        run.Run(config, "")
    config.loss.balance = "median"
    with pytest.raises(config_checks.ConfigError, match=r"loss\.balance.*median_frequency"):
        config_checks.validate(config)


def test_a_training_subset_is_the_splits_first_examples_and_too_many_is_named(tiny_data_dir):
    """data.train_examples (the data-size study): the first N training examples, which the
    balancing weights then count; more than the split holds is refused, naming the range."""
    config = tiny_config("fcn32s")
    config.data.data_dir = tiny_data_dir
    config.data.train_examples, config.loss.balance = 5, "median_frequency"
    trainer = run.Run(config, "")
    source = trainer.dataset.split("train")
    assert len(trainer.train_source) == 5
    assert [trainer.train_source[i]["id"] for i in range(5)] == [source[i]["id"] for i in range(5)]
    with pytest.raises(IndexError):
        trainer.train_source[5]
    labels = [pipeline.decode(source[i])[1] for i in range(5)]
    assert trainer.loss_class_weights(config.loss) == pytest.approx(
        loop_median_frequency(labels, trainer.num_classes), rel=1e-9)
    config.data.train_examples = len(source) + 1
    with pytest.raises(ValueError, match=r"^data\.train_examples=17: the split has 16 examples; "
                                         r"choose 1 to 16, or 0 for all$"):
        run.Run(config, "")
