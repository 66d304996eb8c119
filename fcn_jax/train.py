"""Training and evaluation loops (FCN paper, section 4.3: end-to-end, whole-image training).

``train_and_evaluate(config, workdir)`` trains with periodic evaluation, logs to
``metrics.jsonl`` and TensorBoard, renders prediction overlays, checkpoints with orbax and
resumes automatically: running the same command again continues from the latest checkpoint
(model, optimiser, step, RNG; the data position is the step).
"""

import contextlib
import functools
import json
import os

import jax
import ml_collections
import numpy as np
from flax import nnx
from tqdm import tqdm

from fcn_jax import (backends, class_balance, config_checks, data, metrics, models, optim,
                     steps, viz, weights)
from fcn_jax.checkpoint import Checkpointer, ModelMismatch
from fcn_jax.data import augment, pipeline
from fcn_jax.inference import InferenceOptions
from fcn_jax.models.vgg import TRUNK_STRIDE
from fcn_jax.parallel import DataParallel
from fcn_jax.preemption import Preempted, StopRequests
from fcn_jax.step_clock import StepClock
from fcn_jax.workdir import WorkdirLock, config_differences, ensure_writable, write_json
from fcn_jax.writer import MetricWriter


class Trainer:
    """Everything one run needs: data, model pieces, optimiser, compiled steps, state.

    ``init_from``: a weight file or a previous stage's workdir loaded into the fresh model
    (fcn_jax/weights.py); "" keeps the random initialisation.
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
        model = models.build(config, self.num_classes, config.seed)
        if init_from:
            report = weights.initialise(model, init_from, config.model.init_convention)
            print(f"initialised from {init_from} ({report['layout']}): "
                  f"{len(report['loaded'])} arrays loaded; dropped: "
                  f"{', '.join(report['discarded']) or '-'}; left at their initialisation: "
                  f"{', '.join(report['kept_init']) or '-'}")
        self.graphdef, params, self.constants = nnx.split(model, nnx.Param, ...)
        self.schedule = optim.learning_rate_schedule(config.optim, config.train.num_steps)
        tx = optim.build(config.optim, config.train.num_steps)
        self.state = {"step": np.zeros((), np.int32), "params": params,
                      "opt_state": tx.init(params), "rng": jax.random.PRNGKey(config.seed)}
        self.class_weights = self.loss_class_weights(config.loss)
        pieces = {"graphdef": self.graphdef, "constants": self.constants,
                  "num_classes": self.num_classes}
        self.train_step = self.parallel.wrap(
            functools.partial(steps.train_step, tx=tx, normalize_loss=config.loss.normalize,
                              class_weights=self.class_weights,
                              sampling_rate=config.loss.sampling_rate, **pieces),
            num_args=2, donate=(0,))
        options = InferenceOptions.from_config(config.eval, augment.PAD_RGB)
        self.eval_step = self.parallel.wrap(
            functools.partial(steps.eval_step, options=options, **pieces), num_args=3)
        self.predict = jax.jit(functools.partial(steps.predict, graphdef=self.graphdef,
                                                 constants=self.constants, options=options),
                               compiler_options=backends.compiler_options())

    def loss_class_weights(self, loss: ml_collections.ConfigDict) -> tuple[float, ...] | None:
        """The loss's class weights: ``loss.class_weights`` as given, or with
        ``loss.balance="median_frequency"`` computed from the training split's labels (4.4)."""
        given = tuple(loss.class_weights) or None
        if loss.balance == "median_frequency":
            if given is not None:
                raise ValueError("loss.balance='median_frequency' computes the class weights: "
                                 "leave loss.class_weights=() or set loss.balance='none'")
            source = self.train_source
            labels = (pipeline.decode(source[i])[1] for i in range(len(source)))
            counts = class_balance.label_counts(labels, self.num_classes)
            weights_ = class_balance.median_frequency_weights(*counts)
            print("median-frequency class weights: "
                  + ", ".join(f"{w:.3f}" for w in weights_))
            return weights_
        if given is not None and len(given) != self.num_classes:
            raise ValueError(f"loss.class_weights has {len(given)} entries; the "
                             f"dataset has {self.num_classes} classes")
        return given

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


def majority_baseline(hist: np.ndarray) -> dict:
    """Metrics of predicting the most frequent ground-truth class everywhere."""
    hist = np.asarray(hist)
    gt_total = hist.sum(axis=1)
    baseline = np.zeros_like(hist)
    baseline[:, int(np.argmax(gt_total))] = gt_total
    return metrics.segmentation_metrics(baseline)


def summary(result: dict) -> dict:
    """The four paper metrics of a metrics dict, as percentages."""
    return {k: round(100 * result[k], 2) for k, _ in metrics.PAPER_METRICS}


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
    """Train (resuming if ``workdir`` has a checkpoint), evaluate, return the final metrics.

    Every check (config values, the workdir's lock, data, model, a resumed checkpoint's fit)
    passes before ``config.json`` or anything else of the run is written.
    """
    config_checks.validate(config)
    is_chief = jax.process_index() == 0
    ensure_writable(workdir)
    with WorkdirLock(workdir) if is_chief else contextlib.nullcontext():
        return train_locked(config, workdir, is_chief)


def train_locked(config: ml_collections.ConfigDict, workdir: str, is_chief: bool) -> dict:
    """``train_and_evaluate`` once this process holds the workdir."""
    checkpointer = Checkpointer(workdir, config.train.max_checkpoints)
    try:
        resuming = checkpointer.latest_step() is not None
        trainer = Trainer(config, workdir, init_from="" if resuming else config.model.init_from)
        state = trainer.state
        if resuming:
            state = restore_checked(checkpointer, state, config, workdir)
            print(f"resumed from {checkpointer.directory} at step {int(state['step'])}")
        if is_chief:
            print(backends.describe(config.model.fast_paths))
            write_json(os.path.join(workdir, "config.json"), json.loads(config.to_json()))
            write_json(os.path.join(workdir, "classes.json"),  # for fcn_jax.predict
                       {"class_names": list(trainer.dataset.class_names)})
        final, device_state = train_loop(trainer, state, checkpointer, is_chief)
    finally:  # also on an error: finish pending saves, so the last checkpoint is complete
        checkpointer.close()
    if final is None:  # the workdir held a finished run: score it again
        final = trainer.evaluate(device_state["params"], config.data.eval_split)
    return finish(config, workdir, final, is_chief)


class GoodCheckpoints:
    """Saves only states known to be good (the divergence guard).

    The loss a step reports is that of the parameters before its update, so a state is
    confirmed by the next step's loss: a checkpoint step's state is held on the host and
    saved once the following step's loss is finite. A state with no next step (the last
    step, or a stop on request) is saved if all its parameters are finite.
    """

    def __init__(self, checkpointer: Checkpointer):
        self.checkpointer = checkpointer
        self.held: tuple[int, dict] | None = None
        self.last_saved = checkpointer.latest_step()

    def confirm(self, step: int, loss) -> None:
        """Step ``step`` reported ``loss``: save the held state of step - 1 if it is finite."""
        if self.held is None:
            return
        held_step, state = self.held
        self.held = None
        self.check_losses([loss], step)
        self.save(held_step, state)

    def hold(self, step: int, state: dict) -> None:
        self.held = (step, state)

    def save_now(self, step: int, state: dict) -> None:
        if not all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(state["params"])):
            raise FloatingPointError(f"the parameters are not finite after step {step}; "
                                     f"stopped without saving. {self.advice()}")
        self.save(step, state)

    def save(self, step: int, state: dict) -> None:
        self.checkpointer.save(step, state)
        self.last_saved = step

    def advice(self) -> str:
        if self.last_saved is None:
            return ("No good checkpoint was written; lower optim.learning_rate and run again "
                    "(it starts from the beginning)")
        return (f"The last good checkpoint is step {self.last_saved} in "
                f"{self.checkpointer.directory}; lower optim.learning_rate and run again to "
                "resume from it")

    def check_losses(self, losses: list, step: int) -> None:
        """Stop on a NaN or infinite loss among the steps up to ``step``, before anything is
        saved from the bad state."""
        losses = np.array(losses, np.float64)
        if not np.all(np.isfinite(losses)):
            first_bad = step - len(losses) + 1 + int(np.argmin(np.isfinite(losses)))
            raise FloatingPointError(f"training loss is not finite at step {first_bad}; "
                                     f"stopped without saving. {self.advice()}")


def train_loop(trainer: Trainer, state: dict, checkpointer: Checkpointer,
               is_chief: bool) -> tuple[dict | None, dict]:
    """Steps from ``state`` to ``train.num_steps`` with logging, evaluation, checkpoints and
    stopping on SIGTERM/SIGINT; the last evaluation (None if no step ran) and the state."""
    config = trainer.config
    start, num_steps = int(state["step"]), config.train.num_steps
    writer = MetricWriter(trainer.workdir, enabled=is_chief)
    writer.truncate(start)
    device_state = trainer.parallel.put_replicated(state)
    train_data = pipeline.train_dataset(
        trainer.train_source, local_batch=trainer.local_batch,
        seed=config.seed, crop_size=config.data.crop_size,
        scale_range=tuple(config.data.scale_range), flip=config.data.flip)
    batches = pipeline.train_iterator(train_data, start, num_threads=config.data.num_threads,
                                      prefetch=config.data.prefetch)
    good = GoodCheckpoints(checkpointer)
    pending, clock, first_seconds, final = [], StepClock(), None, None
    progress = tqdm(total=num_steps, initial=start, desc="train", disable=not is_chief,
                    dynamic_ncols=True)
    with StopRequests() as stop:
        try:
            for step in range(start + 1, num_steps + 1):
                batch = trainer.parallel.put_batch(next(batches))
                device_state, step_metrics = trainer.train_step(device_state, batch)
                if step == start + 1:
                    first_seconds = clock.first_step(step_metrics)
                else:
                    clock.step()
                pending.append(step_metrics)
                progress.update(1)
                if good.held is not None:
                    good.confirm(step, trainer.parallel.get_replicated(step_metrics["loss"]))
                if step % config.train.log_every == 0 or step == num_steps:
                    logged = trainer.parallel.get_replicated(pending)
                    good.check_losses([m["loss"] for m in logged], step)
                    scalars = train_scalars(logged, clock.rate(), float(trainer.schedule(step)))
                    if first_seconds is not None:
                        scalars["first_step_seconds"], first_seconds = first_seconds, None
                    writer.write(step, "train", scalars)
                    progress.set_postfix(loss=f"{scalars['loss']:.4f}",
                                         train_miu=f"{scalars['mean_iu']:.3f}")
                    pending = []
                if step % config.train.eval_every == 0 or step == num_steps:
                    with clock.pause(device_state) as timed:
                        final = trainer.evaluate(device_state["params"], config.data.eval_split)
                        if is_chief:
                            writer.image(step, "eval/overlays", trainer.save_overlays(
                                trainer.parallel.get_replicated(device_state["params"]), step))
                    writer.write(step, "eval", {**{k: v for k, v in final.items()
                                                   if k != "confusion"}, **timed})
                    progress.write(f"step {step}: {config.data.eval_split} {summary(final)}")
                last = step == num_steps or stop.requested
                if step % config.train.checkpoint_every == 0 or last:
                    with clock.pause(device_state):
                        good.check_losses(trainer.parallel.get_replicated(
                            [m["loss"] for m in pending]), step)
                        host_state = trainer.parallel.get_replicated(device_state)
                        if last:
                            good.save_now(step, host_state)
                        else:
                            good.hold(step, host_state)
                if stop.requested and step < num_steps:
                    raise Preempted(f"stopped by {stop.signal_name} after step {step}; "
                                    f"checkpoint {step} is saved in {checkpointer.directory}: "
                                    "run the same command to resume")
        finally:
            progress.close()
            writer.close()
    return final, device_state


def train_scalars(logged: list[dict], steps_per_sec: float | None,
                  learning_rate: float) -> dict:
    """Loss, pixel accuracy and mean IU over the logged steps, learning rate, speed (training
    steps only: ``step_clock.StepClock``)."""
    train_metrics = metrics.segmentation_metrics(sum(m["confusion"] for m in logged))
    return {"loss": float(np.mean([m["loss"] for m in logged])),
            "pixel_acc": train_metrics["pixel_acc"], "mean_iu": train_metrics["mean_iu"],
            "learning_rate": learning_rate, "steps_per_sec": steps_per_sec}


def finish(config: ml_collections.ConfigDict, workdir: str, result: dict, is_chief: bool) -> dict:
    """Write ``results.json`` with the final metrics beside the majority-class baseline."""
    payload = {"split": config.data.eval_split, "step": config.train.num_steps,
               **report(result), "per_class_iu": result["per_class_iu"],
               "confusion": result["confusion"]}
    if is_chief:
        write_json(os.path.join(workdir, "results.json"), payload)
    return payload


def report(result: dict) -> dict:
    """The paper metrics, boundary F and the majority-class baseline of an evaluation."""
    return {"metrics": summary(result), "boundary_f": round(100 * result["boundary_f"], 2),
            "majority_baseline": summary(majority_baseline(np.asarray(result["confusion"])))}


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


def restore_latest(config: ml_collections.ConfigDict, workdir: str) -> tuple[Trainer, dict]:
    """A Trainer for ``config`` and the latest checkpointed state of ``workdir``."""
    config_checks.validate(config)
    checkpointer = Checkpointer(workdir, config.train.max_checkpoints, create=False)
    try:
        trainer = Trainer(config, workdir)
        if checkpointer.latest_step() is None:
            raise FileNotFoundError(f"no checkpoint in {checkpointer.directory}; train first")
        return trainer, restore_checked(checkpointer, trainer.state, config, workdir)
    finally:
        checkpointer.close()


def evaluate_checkpoint(config: ml_collections.ConfigDict, workdir: str) -> dict:
    """Score the latest checkpoint of ``workdir`` on ``config.data.eval_split``."""
    trainer, state = restore_latest(config, workdir)
    return score(trainer, state["params"], int(state["step"]))


def evaluate_weights(config: ml_collections.ConfigDict, path: str) -> dict:
    """Score a weight file (fcn_jax/weights.py: VGG16 or released FCN weights) on
    ``config.data.eval_split``; nothing is written."""
    trainer = Trainer(config, "", init_from=path)
    return score(trainer, trainer.state["params"], None)


def score(trainer: Trainer, host_params, step: int | None) -> dict:
    """The four paper metrics, boundary F and the majority baseline of ``host_params``."""
    split = trainer.config.data.eval_split
    result = trainer.evaluate(trainer.parallel.put_replicated(host_params), split)
    return {"split": split, "step": step, **report(result)}
