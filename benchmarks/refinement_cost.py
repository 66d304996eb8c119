"""What it costs to refine FCN-32s's stride: skip fusion (FCN-16s, FCN-8s) against
shift-and-stitch (section 3.2, ``model.shift_stitch``), side by side in one process.

    .venv/bin/python -m benchmarks.refinement_cost   # the studies' net: width 0.125, 96x96

For each net, alternating rounds: the trainer's step body (Adam, mean pixel loss) on one
batch, and inference (the forward pass without dropout) on the same images. Prints the median
milliseconds per train step and per inferred image, and each as a multiple of FCN-32s's.
"""

import argparse

import jax
from flax import nnx

from benchmarks.compute_dtype import (NUM_CLASSES, alternating_ms, random_batch,
                                      step_runner)
from fcn_jax import backends
from fcn_jax.models.fcn import FCN

# name -> FCN keyword arguments; the output stride before the final upsampling in the name.
NETS = {"FCN-32s (stride 32)": {"variant": "fcn32s"},
        "FCN-16s (stride 16, pool4 skip)": {"variant": "fcn16s"},
        "FCN-32s + shift-and-stitch f=2 (stride 16)": {"variant": "fcn32s", "shift_stitch": 2},
        "FCN-8s (stride 8, pool4 + pool3 skips)": {"variant": "fcn8s"},
        "FCN-32s + shift-and-stitch f=4 (stride 8)": {"variant": "fcn32s", "shift_stitch": 4}}


def size_parser(description: str) -> argparse.ArgumentParser:
    """The nets' width and the batch's size, and how many alternating rounds and calls."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--width", type=float, default=0.125)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=5)
    return parser


def parse_args(argv=None) -> argparse.Namespace:
    args = size_parser(__doc__.splitlines()[0]).parse_args(argv)
    args.variant = "fcn32s"  # step_runner's default; each net names its own
    return args


def inference_runner(args, images, **model_kwargs):
    """A blocking callable running the compiled forward pass (no dropout) on ``images``."""
    model = FCN(NUM_CLASSES, **{"fc6_kernel": 3, **model_kwargs}, width=args.width,
                rngs=nnx.Rngs(0))
    graphdef, state = nnx.split(model)
    forward = jax.jit(lambda s, x: nnx.merge(graphdef, s)(x),
                      compiler_options=backends.compiler_options())
    return lambda: jax.block_until_ready(forward(state, images))


def main(argv=None):
    args = parse_args(argv)
    batch = random_batch(args)
    train = alternating_ms({name: step_runner(args, batch, **kw) for name, kw in NETS.items()},
                           args.rounds, args.steps)
    infer = alternating_ms({name: inference_runner(args, batch["image"], **kw)
                            for name, kw in NETS.items()}, args.rounds, args.steps)
    base = next(iter(NETS))
    print(f"width {args.width}, {args.size}x{args.size}, batch {args.batch}, "
          f"{jax.devices()[0].device_kind}, {backends.describe('auto')}; median of "
          f"{args.rounds} alternating rounds x {args.steps} calls")
    print("| net | ms per train step | x FCN-32s | ms per inferred image | x FCN-32s |")
    print("|---|---|---|---|---|")
    for name in NETS:
        per_image = infer[name] / args.batch
        print(f"| {name} | {train[name]:.1f} | {train[name] / train[base]:.2f} | "
              f"{per_image:.2f} | {infer[name] / infer[base]:.2f} |")


if __name__ == "__main__":
    main()
