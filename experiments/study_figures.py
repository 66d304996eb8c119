"""What a study's report takes from its trained nets and its data rather than from the metrics:
the paper's Figure 4 (several arms' predictions side by side, section 4.2), its appendix's
upper bound on a prediction made at stride f, and Table 1's architecture columns.
"""

import os

import ml_collections
import numpy as np

from fcn_jax import config_cli, data, metrics, models, run, sweeps, viz
from fcn_jax.data import pipeline
from fcn_jax.models import backbones

FIGURE_IMAGES = 4  # rows of the prediction grid: the first images of the evaluation split


def trial_config(sweep_dir: str, trial: dict) -> ml_collections.ConfigDict:
    """The config a trial trained with (its workdir's config.json, which also holds what
    ``--quick`` changed); its starting weights cleared (its checkpoint has them)."""
    config = config_cli.workdir_config(os.path.join(sweep_dir, trial["name"]))
    sweeps.apply_overrides(config, {sweeps.INIT_KEY: ""})
    return config


def prediction_grid(path: str, sweep_dir: str, columns: dict) -> None:
    """image | ground truth | one column per trial ({title: trial}) on the first validation
    images, each trial's latest checkpoint predicting whole images."""
    predictions, examples, trainer = {}, None, None
    for title, trial in columns.items():
        config = trial_config(sweep_dir, trial)
        trainer, state = run.restore_latest(config, os.path.join(sweep_dir, trial["name"]))
        examples = examples or trainer.first_eval_examples(FIGURE_IMAGES)
        predictions[title] = trainer.predict_examples(state["params"], examples)
    viz.save_prediction_grid(path, [i for i, _ in examples], [label for _, label in examples],
                             predictions, trainer.num_classes, trainer.dataset.class_names)


def coarse_labels(labels: np.ndarray, factor: int, num_classes: int) -> np.ndarray:
    """Each f x f block of [N,H,W] labels replaced by its most frequent valid label (255 where
    the block has none), expanded back: the best a prediction at stride f can do."""
    n, h, w = labels.shape
    ph, pw = -h % factor, -w % factor
    padded = np.pad(labels, ((0, 0), (0, ph), (0, pw)), constant_values=255)
    blocks = padded.reshape(n, (h + ph) // factor, factor, (w + pw) // factor, factor)
    counts = np.stack([(blocks == c).sum(axis=(2, 4)) for c in range(num_classes)], -1)
    block_labels = np.where(counts.sum(-1) > 0, counts.argmax(-1), 255)
    expanded = np.repeat(np.repeat(block_labels, factor, axis=1), factor, axis=2)
    return expanded[:, :h, :w].astype(labels.dtype)


def coarse_upper_bound(config: ml_collections.ConfigDict,
                       factors: list[int]) -> tuple[str, dict[int, float]]:
    """Mean IU (%) of the block-mode ground truth against the ground truth of the evaluation
    split of ``config`` (a trial's), per factor (paper, appendix); and the split's name."""
    dataset = data.build(config)
    source = dataset.split(config.data.eval_split)
    confusion = {f: np.zeros((dataset.num_classes,) * 2, np.int64) for f in factors}
    for i in range(len(source)):
        label = pipeline.decode(source[i])[1][None]
        for f in factors:
            confusion[f] += np.asarray(metrics.confusion_matrix(
                label, coarse_labels(label, f, dataset.num_classes), dataset.num_classes))
    return config.data.eval_split, {
        f: 100 * float(metrics.segmentation_metrics(confusion[f])["mean_iu"]) for f in factors}


def backbone_columns(config: ml_collections.ConfigDict) -> dict:
    """Table 1's architecture columns of the FCN a trial's ``config`` trained (its parameters,
    receptive field and stride; models.backbones.table1_columns)."""
    num_classes = data.build(config).num_classes
    return backbones.table1_columns(models.shape_of(config.model, num_classes))
