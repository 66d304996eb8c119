"""Training throughput counts training steps only (fcn_jax/step_clock.py): the first step,
which compiles, and evaluation or checkpoint time are timed apart. A fake clock makes the
arithmetic exact."""

import numpy as np

from fcn_jax.step_clock import StepClock


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_compile_and_evaluation_time_are_left_out_of_the_rate():
    fake = FakeClock()
    clock = StepClock(fake)
    fake.now += 30.0                       # the first step: compile + one step
    assert clock.first_step(np.zeros(2)) == 30.0
    for _ in range(4):                     # four steps of 0.5 s
        fake.now += 0.5
        clock.step()
    with clock.pause(np.zeros(2)) as timed:
        fake.now += 60.0                   # an evaluation
    assert timed == {"seconds": 60.0}
    fake.now += 0.5
    clock.step()
    assert clock.rate() == 5 / 2.5         # 5 steps in 2.5 s of training
    assert clock.rate() is None            # nothing counted since


def test_a_log_interval_of_only_the_first_step_has_no_rate():
    fake = FakeClock()
    clock = StepClock(fake)
    fake.now += 12.0
    clock.first_step(np.zeros(1))
    assert clock.rate() is None
