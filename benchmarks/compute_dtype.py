"""The train step in float32 and in bfloat16 (``model.compute_dtype``), alternating in one process.

    .venv/bin/python -m benchmarks.compute_dtype   # the default run's net: width 0.125, 96x96

Both steps are the trainer's body (``steps.train_step``: Adam, mean pixel loss) on the same
batch; ``--rounds`` alternating rounds of ``--steps`` steps each, one untimed step first per
round; prints the median milliseconds per step of each and their ratio.
"""

import argparse
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from benchmarks.fcn_vs_torch import seconds_per_call
from fcn_jax import backends, steps
from fcn_jax.models import COMPUTE_DTYPES
from fcn_jax.models.fcn import FCN

NUM_CLASSES = 7  # the embedded dataset's


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", default="fcn8s", choices=["fcn32s", "fcn16s", "fcn8s"])
    parser.add_argument("--width", type=float, default=0.125)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20)
    return parser.parse_args(argv)


def step_runner(args, batch: dict, **model_kwargs):
    """A blocking callable running one compiled train step of the FCN that ``args`` (variant,
    width) and ``model_kwargs`` (e.g. compute_dtype, shift_stitch) describe."""
    model = FCN(NUM_CLASSES, **{"variant": args.variant, **model_kwargs}, width=args.width,
                fc6_kernel=3, rngs=nnx.Rngs(0))
    graphdef, params, constants = nnx.split(model, nnx.Param, ...)
    tx = optax.adam(1e-3)
    holder = [{"step": jnp.zeros((), jnp.int32), "params": params,
               "opt_state": tx.init(params), "rng": jax.random.PRNGKey(0)}]
    step = jax.jit(functools.partial(steps.train_step, graphdef=graphdef, constants=constants,
                                     tx=tx, num_classes=NUM_CLASSES, normalize_loss=True,
                                     class_weights=None, axis_name=None),
                   donate_argnums=(0,), compiler_options=backends.compiler_options())

    def once():
        holder[0], metrics = step(holder[0], batch)
        jax.block_until_ready((holder[0], metrics))
    return once


def random_batch(args) -> dict:
    """``args.batch`` random images of ``args.size`` x ``args.size`` and their labels."""
    rng = np.random.default_rng(0)
    shape = (args.batch, args.size, args.size)
    return {"image": jnp.asarray(rng.integers(0, 256, (*shape, 3)), jnp.uint8),
            "label": jnp.asarray(rng.integers(0, NUM_CLASSES, shape), jnp.uint8)}


def alternating_ms(runners: dict, rounds: int, calls: int) -> dict:
    """Median milliseconds per call of each blocking callable, over ``rounds`` rounds that
    run each in turn for ``calls`` timed calls after one untimed call."""
    times = {name: [] for name in runners}
    for _ in range(rounds):
        for name, once in runners.items():
            once()  # untimed: the first call after another net's
            times[name].append(seconds_per_call(once, calls)[0])
    return {name: 1000 * float(np.median(t)) for name, t in times.items()}


def main(argv=None):
    args = parse_args(argv)
    batch = random_batch(args)
    runners = {dtype: step_runner(args, batch, compute_dtype=dtype) for dtype in COMPUTE_DTYPES}
    ms = alternating_ms(runners, args.rounds, args.steps)
    print(f"{args.variant}, width {args.width}, {args.size}x{args.size}, batch {args.batch}, "
          f"{jax.devices()[0].device_kind}, {backends.describe('auto')}; median of "
          f"{args.rounds} alternating rounds x {args.steps} steps")
    for dtype, value in ms.items():
        print(f"{dtype}: {value:.1f} ms per train step")
    print(f"bfloat16 / float32 time: {ms['bfloat16'] / ms['float32']:.2f}")


if __name__ == "__main__":
    main()
