"""A run assembled from its config: data, model, optimiser, compiled steps, the initial state.

``Run(config, workdir)`` is what training (train.py), scoring (evaluate.py) and overlays use:
the dataset and its training subset, the data-parallel placement, the model split into
(graphdef, params, constants), the optimiser, the compiled train / eval / predict steps
(steps.py bodies wrapped by parallel.py), and the evaluation of a whole split.
``restore_latest`` is a Run with the latest checkpoint of a workdir.
"""

import functools
import os

import jax
import ml_collections
import numpy as np
from flax import nnx

from fcn_jax import (backends, class_balance, config_checks, data, metrics, models, optim,
                     steps, viz)
from fcn_jax.checkpoint import Checkpointer, ModelMismatch
from fcn_jax.data import pipeline
from fcn_jax.inference import InferenceOptions
from fcn_jax.inputs import PAD_RGB
from fcn_jax.models import pretrained
from fcn_jax.models.vgg import TRUNK_STRIDE
from fcn_jax.parallel import DataParallel
from fcn_jax.workdir import config_differences


def check_class_weights(loss: ml_collections.ConfigDict, num_classes: int) -> None:
    """Class weights given with median-frequency balancing, or not one per class: an error."""
    given = tuple(loss.class_weights)
    if given and loss.balance == "median_frequency":
        raise ValueError("loss.balance='median_frequency' computes the class weights: "
                         "leave loss.class_weights=() or set loss.balance='none'")
    if given and len(given) != num_classes:
        raise ValueError(f"loss.class_weights has {len(given)} entries; the "
                         f"dataset has {num_classes} classes")


class Run:
    """Everything one run needs: data, model pieces, optimiser, compiled steps, state.

    ``init_from``: a weight file or a previous stage's workdir loaded into the fresh model
    (fcn_jax/models/pretrained.py); "" keeps the random initialisation.
    """

    def __init__(self, config: ml_collections.ConfigDict, workdir: str, init_from: str = ""):
        self.config = config
        self.workdir = workdir
        self.dataset = data.build(config)
        self.num_classes = self.dataset.num_classes
        self.train_source = data.first_examples(self.dataset.split(config.data.train_split),
                                                config.data.train_examples,
                                                "data.train_examples")
        self.parallel = DataParallel(config.parallel.mode, config.parallel.num_devices)
        self.local_batch = self.parallel.check_batch_size(config.train.batch_size)
        self.eval_local_batch = self.parallel.check_batch_size(config.eval.batch_size,
                                                               "eval.batch_size")
        model = models.build(config.model, self.num_classes, config.seed)
        if init_from:
            report = pretrained.initialise(model, init_from, config.model.init_convention)
            print(f"initialised from {init_from} ({report['layout']}): "
                  f"{len(report['loaded'])} arrays loaded; dropped: "
                  f"{', '.join(report['discarded']) or '-'}; left at their initialisation: "
                  f"{', '.join(report['kept_init']) or '-'}")
        self.graphdef, params, self.constants = nnx.split(model, nnx.Param, ...)
        self.schedule = optim.learning_rate_schedule(config.optim, config.train.num_steps)
        tx = optim.build(config.optim, config.train.num_steps)
        self.state = {"step": np.zeros((), np.int32), "params": params,
                      "opt_state": optim.initial_state(tx, params),
                      "rng": jax.random.PRNGKey(config.seed)}
        check_class_weights(config.loss, self.num_classes)
        pieces = {"graphdef": self.graphdef, "constants": self.constants,
                  "num_classes": self.num_classes}
        options = InferenceOptions.from_config(config.eval, PAD_RGB)
        self.eval_step = self.parallel.wrap(
            functools.partial(steps.eval_step, options=options, **pieces), num_args=3)
        self.predict = jax.jit(functools.partial(steps.predict, graphdef=self.graphdef,
                                                 constants=self.constants, options=options),
                               compiler_options=backends.compiler_options())

    @functools.cached_property
    def train_step(self):
        """The compiled data-parallel train step, ``(state, batch) -> (state, metrics)``; built
        on first use, so that evaluating or predicting never reads the training labels for
        class weights. The learning rate is an input of the compiled program, not a constant
        in it: runs that differ only in ``optim.learning_rate`` (a line search) share it."""
        config = self.config
        body = functools.partial(steps.train_step, graphdef=self.graphdef,
                                 constants=self.constants, num_classes=self.num_classes,
                                 normalize_loss=config.loss.normalize,
                                 class_weights=self.loss_class_weights(config.loss),
                                 sampling_rate=config.loss.sampling_rate)

        def at_rate(state, batch, learning_rate, *, axis_name):
            tx = optim.build(config.optim, config.train.num_steps, learning_rate)
            return body(state, batch, tx=tx, axis_name=axis_name)

        step = self.parallel.wrap(at_rate, num_args=3, donate=(0,))
        learning_rate = self.parallel.put_replicated(np.float32(config.optim.learning_rate))
        return lambda state, batch: step(state, batch, learning_rate)

    def loss_class_weights(self, loss: ml_collections.ConfigDict) -> tuple[float, ...] | None:
        """The loss's class weights: ``loss.class_weights`` as given, or with
        ``loss.balance="median_frequency"`` computed from the training split's labels (4.4)."""
        if loss.balance != "median_frequency":
            return tuple(loss.class_weights) or None
        source = self.train_source
        labels = (pipeline.decode(source[i])[1] for i in range(len(source)))
        counts = class_balance.label_counts(labels, self.num_classes)
        weights_ = class_balance.median_frequency_weights(*counts)
        print("median-frequency class weights: " + ", ".join(f"{w:.3f}" for w in weights_))
        return weights_

    def evaluate(self, params, split: str) -> dict:
        """The paper's metrics and the boundary F-score over a whole split (params replicated).

        Images are padded to a multiple of the trunk's stride, except in the Caffe layout,
        which takes any size: there each batch is padded only to its largest image (with
        eval.batch_size 1, every image is scored at its own size, as the reference's).
        """
        totals = self.parallel.put_replicated(
            {"confusion": np.zeros((self.num_classes, self.num_classes), np.int32),
             "boundary": np.zeros(4, np.int32)})
        stride = 1 if self.config.model.caffe else TRUNK_STRIDE
        for batch in pipeline.eval_batches(self.dataset.split(split),
                                           local_batch=self.eval_local_batch, stride=stride):
            totals = self.eval_step(params, self.parallel.put_batch(batch), totals)
        totals = self.parallel.get_replicated(totals)
        hist = np.asarray(totals["confusion"], np.int64)
        result = metrics.segmentation_metrics(hist)
        result.update(metrics.boundary_f_score(totals["boundary"]))
        result["confusion"] = hist.tolist()
        return result

    def first_eval_examples(self, count: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """The first ``count`` (image, label) pairs of the evaluation split, decoded."""
        source = self.dataset.split(self.config.data.eval_split)
        return [pipeline.decode(source[i]) for i in range(min(count, len(source)))]

    def predict_examples(self, host_params, examples: list) -> list[np.ndarray]:
        """Whole-image predictions of (image, label) pairs, each cropped to its image."""
        batch = pipeline.pad_batch(examples, TRUNK_STRIDE, len(examples))
        pred = np.asarray(self.predict(host_params, batch["image"]))
        return [p[:label.shape[0], :label.shape[1]] for p, (_, label) in zip(pred, examples)]

    def save_overlays(self, host_params, step: int) -> str | None:
        """Render image | ground truth | prediction for the first validation images, titled,
        with a legend of the class names; the PNG's path (None when there are none)."""
        examples = self.first_eval_examples(self.config.train.num_overlays)
        if not examples:
            return None
        path = os.path.join(self.workdir, "overlays", f"step_{step:06d}.png")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        predictions = self.predict_examples(host_params, examples)
        viz.save_prediction_grid(path, [i for i, _ in examples], [label for _, label in examples],
                                 {f"prediction, step {step}": predictions}, self.num_classes,
                                 class_names=list(self.dataset.class_names))
        return path


def restore_checked(checkpointer: Checkpointer, template, config: ml_collections.ConfigDict,
                    workdir: str):
    """The latest checkpoint restored into ``template``; for a checkpoint of another net, the
    error names first the fields where ``config`` differs from the workdir's config.json."""
    try:
        return checkpointer.restore(template)
    except ModelMismatch as error:
        differing = config_differences(workdir, config)
        if not differing:
            raise
        raise ModelMismatch(f"{workdir} was trained with another config ("
                            + "; ".join(differing[:6])
                            + (f"; and {len(differing) - 6} more" if len(differing) > 6 else "")
                            + f"): pass the same values, or --config left out to use its "
                            f"config.json. {error}") from None


def restore_latest(config: ml_collections.ConfigDict, workdir: str) -> tuple[Run, dict]:
    """A Run for ``config`` and the latest checkpointed state of ``workdir``."""
    config_checks.validate(config)
    checkpointer = Checkpointer(workdir, config.train.max_checkpoints, create=False)
    try:
        run = Run(config, workdir)
        if checkpointer.latest_step() is None:
            raise FileNotFoundError(f"no checkpoint in {checkpointer.directory}; train first")
        return run, restore_checked(checkpointer, run.state, config, workdir)
    finally:
        checkpointer.close()
