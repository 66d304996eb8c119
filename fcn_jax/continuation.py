"""Training a run further in a new workdir (``train.continue_from``): the same run, longer.

Under a learning rate that does not depend on ``train.num_steps`` (section 4.1's fixed rate,
or step decay at fixed steps), the first N steps of an M-step run are the N-step run. So a
run of N steps continued to M in a new workdir is the M-step run: it starts from the other
workdir's latest checkpoint (parameters, optimiser moments, step, RNG; the data position is
the step), with that run's log up to there, and the other workdir is only read. The studies
use it to score one net after several step counts without training the first N again
(``experiments.sweep``, ``sweeps.CONTINUES``).
"""

import os

import ml_collections

from fcn_jax.checkpoint import Checkpointer
from fcn_jax.run import restore_checked
from fcn_jax.workdir import WorkdirLock, config_differences
from fcn_jax.writer import LOG_NAME, complete_record

# What a continuation may change: the run's length and how often it logs, evaluates, renders
# and checkpoints, none of which changes a number of the run.
FREE_KEYS = ("train.num_steps", "train.continue_from", "train.log_every", "train.eval_every",
             "train.checkpoint_every", "train.max_checkpoints", "train.num_overlays")
LENGTH_DEPENDENT_SCHEDULES = ("cosine",)  # its rate at step n depends on train.num_steps


class ContinuationError(ValueError):
    """``train.continue_from`` names no run this config can continue."""


def check(config: ml_collections.ConfigDict) -> int:
    """The step the run of ``train.continue_from`` stopped at, once it is known to be this
    config's run (every field but ``FREE_KEYS`` equal) with at most ``train.num_steps``
    steps; else a ``ContinuationError`` naming what differs."""
    source = config.train.continue_from
    where = f"train.continue_from={source!r}"
    if config.optim.schedule in LENGTH_DEPENDENT_SCHEDULES:
        raise ContinuationError(
            f"{where}: optim.schedule={config.optim.schedule!r} sets the rate of every step "
            "from train.num_steps, so a shorter run is not the start of a longer one; use "
            "'constant' or 'step', or train from the beginning")
    if not os.path.isfile(os.path.join(source, "config.json")):
        raise ContinuationError(f"{where}: not a training workdir (no config.json); name the "
                                "workdir of the run to train further")
    differing = [line for line in config_differences(source, config)
                 if line.split(":")[0] not in FREE_KEYS]
    if differing:
        raise ContinuationError(
            f"{where} was trained with another config ({'; '.join(differing[:4])}"
            + (f"; and {len(differing) - 4} more" if len(differing) > 4 else "")
            + f"): a continuation may change only {', '.join(FREE_KEYS)}; pass that run's "
            "other values")
    with WorkdirLock(source):  # a run still training there is refused
        checkpointer = Checkpointer(source, create=False)
        try:
            step = checkpointer.latest_step()
        finally:
            checkpointer.close()
    if step is None:
        raise ContinuationError(f"{where}: no checkpoint in {checkpointer.directory}")
    if step > config.train.num_steps:
        raise ContinuationError(f"{where} stopped at step {step}, past train.num_steps="
                                f"{config.train.num_steps}: continue it to more steps")
    return step


def restore(config: ml_collections.ConfigDict, template: dict) -> dict:
    """The state of ``train.continue_from``'s latest checkpoint, restored into ``template``
    (its lock held meanwhile: a run still training there is refused)."""
    source = config.train.continue_from
    with WorkdirLock(source):
        checkpointer = Checkpointer(source, create=False)
        try:
            return restore_checked(checkpointer, template, config, source)
        finally:
            checkpointer.close()


def copy_log(config: ml_collections.ConfigDict, workdir: str, step: int) -> None:
    """Write ``workdir``'s metrics.jsonl as the continued run's records up to ``step`` (a
    continuation that stopped before its first checkpoint starts over from them)."""
    source_log = os.path.join(config.train.continue_from, LOG_NAME)
    lines = []
    if os.path.exists(source_log):
        with open(source_log, encoding="utf-8") as f:
            lines = [line for line in f if line.strip() and complete_record(line, step)]
    path = os.path.join(workdir, LOG_NAME)
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        f.writelines(lines)
    os.replace(path + ".tmp", path)
