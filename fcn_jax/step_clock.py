"""Training throughput from training steps only: the first step, which compiles the train
step, and the time spent evaluating or checkpointing are timed apart (logged as
``first_step_seconds`` and an evaluation's ``seconds``)."""

import contextlib
import time

import jax


class StepClock:
    """Counts steps and their seconds between two ``rate`` calls, less the paused time."""

    def __init__(self, clock=time.perf_counter):
        self.clock = clock
        self.since = clock()
        self.paused = 0.0
        self.steps = 0

    def first_step(self, outputs) -> float:
        """Seconds from the start to the end of the first step (compilation included), once
        ``outputs`` are computed; that step is left out of the next ``rate``."""
        jax.block_until_ready(outputs)
        now = self.clock()
        seconds, self.since, self.paused = now - self.since, now, 0.0
        return seconds

    def step(self) -> None:
        self.steps += 1

    @contextlib.contextmanager
    def pause(self, pending):
        """Time a block apart (evaluation, checkpointing), once ``pending`` (the training
        state) is computed; yields a dict whose ``seconds`` it fills."""
        jax.block_until_ready(pending)
        timed, start = {}, self.clock()
        yield timed
        timed["seconds"] = self.clock() - start
        self.paused += timed["seconds"]

    def rate(self) -> float | None:
        """Training steps per second since the last call (None if none was counted)."""
        now = self.clock()
        elapsed = now - self.since - self.paused
        steps, self.since, self.paused, self.steps = self.steps, now, 0.0, 0
        return steps / elapsed if steps else None
