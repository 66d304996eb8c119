"""The training loop (FCN paper, section 4.3: end-to-end, whole-image training).

``train_and_evaluate(config, workdir)`` trains a ``run.Run`` with periodic evaluation, logs to
``metrics.jsonl`` and TensorBoard, renders prediction overlays, checkpoints with orbax and
resumes automatically: running the same command again continues from the latest checkpoint
(model, optimiser, step, RNG; the data position is the step). A new workdir with
``train.continue_from`` starts from another run's latest checkpoint instead (continuation.py).
The final scores are written by ``evaluate.finish``.
"""

import contextlib
import json
import os

import jax
import ml_collections
import numpy as np
from tqdm import tqdm

from fcn_jax import backends, config_checks, continuation, evaluate, metrics
from fcn_jax.checkpoint import Checkpointer
from fcn_jax.data import pipeline
from fcn_jax.preemption import Preempted, StopRequests
from fcn_jax.run import Run, restore_checked
from fcn_jax.step_clock import StepClock
from fcn_jax.workdir import WorkdirLock, ensure_writable, write_json
from fcn_jax.writer import MetricWriter


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
        continuing = not resuming and bool(config.train.continue_from)
        continued_step = continuation.check(config) if continuing else None
        trainer = Run(config, workdir, init_from="" if resuming or continuing
                      else config.model.init_from)
        state = trainer.state
        if resuming:
            state = restore_checked(checkpointer, state, config, workdir)
            print(f"resumed from {checkpointer.directory} at step {int(state['step'])}")
        elif continuing:
            state = continuation.restore(config, state)
            print(f"continuing {config.train.continue_from} from its step {continued_step}")
        if is_chief:
            if continuing:
                continuation.copy_log(config, workdir, continued_step)
            print(backends.describe(config.model.fast_paths))
            write_json(os.path.join(workdir, "config.json"), json.loads(config.to_json()))
            write_json(os.path.join(workdir, "classes.json"),  # for fcn_jax.predict
                       {"class_names": list(trainer.dataset.class_names)})
        final, device_state = train_loop(trainer, state, checkpointer, is_chief)
    finally:  # also on an error: finish pending saves, so the last checkpoint is complete
        checkpointer.close()
    if final is None:  # the workdir held a finished run: score it again
        final = trainer.evaluate(device_state["params"], config.data.eval_split)
    return evaluate.finish(config, workdir, final, is_chief)


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


def train_loop(trainer: Run, state: dict, checkpointer: Checkpointer,
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
                                         train_miu=f"{100 * scalars['mean_iu']:.1f}%")
                    pending = []
                if step % config.train.eval_every == 0 or step == num_steps:
                    with clock.pause(device_state) as timed:
                        final = trainer.evaluate(device_state["params"], config.data.eval_split)
                        if is_chief:
                            writer.image(step, "eval/overlays", trainer.save_overlays(
                                trainer.parallel.get_replicated(device_state["params"]), step))
                    writer.write(step, "eval", {**{k: v for k, v in final.items()
                                                   if k != "confusion"}, **timed})
                    progress.write(f"step {step}: {config.data.eval_split} {evaluate.summary(final)}")
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
