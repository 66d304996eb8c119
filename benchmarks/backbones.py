"""Table 1's columns for each backbone (FCN paper, Table 1): FCN-32s on VGG16, AlexNet and
GoogLeNet, side by side in one process.

    .venv/bin/python -m benchmarks.backbones            # the study's nets: width 0.125, 96x96
    .venv/bin/python -m benchmarks.backbones --paper    # the paper's nets: width 1, 500x500

Prints, per backbone: learned parameters, receptive field and maximum stride (of the
features score_fr reads), the median milliseconds of a forward pass per image (compiled, no
dropout, alternating rounds) and that time as a multiple of VGG16's, beside the paper's.
Only the ratios compare across machines; the paper timed a Tesla K40c.
"""

import argparse

import numpy as np

from benchmarks.compute_dtype import NUM_CLASSES, alternating_ms
from benchmarks.refinement_cost import inference_runner, size_parser
from fcn_jax import backends
from fcn_jax.models import backbones
from fcn_jax.models.fcn import FCN
from flax import nnx

# Table 1: mean IU (VOC 2011 val), forward ms (500x500, K40c), parameters (millions).
PAPER = {"vgg16": (56.0, 210, 134), "alexnet": (39.8, 50, 57), "googlenet": (42.5, 59, 6)}
PAPER_FC6_KERNELS = {"vgg16": 7, "alexnet": 6, "googlenet": 7}  # the ImageNet nets' (224x224)
REFERENCE = "vgg16"


def parse_args(argv=None) -> argparse.Namespace:
    parser = size_parser(__doc__.splitlines()[0])
    parser.add_argument("--paper", action="store_true",
                        help="the paper's nets: width 1, ImageNet fc6, one 500x500 image")
    args = parser.parse_args(argv)
    if args.paper:
        args.width, args.size, args.batch, args.steps = 1.0, 500, 1, 2
    return args


def net_kwargs(args) -> dict:
    """backbone -> FCN keyword arguments: FCN-32s, fc6 sized as the benchmark's nets are."""
    return {name: {"variant": "fcn32s", "backbone": name,
                   "fc6_kernel": PAPER_FC6_KERNELS[name] if args.paper else 3}
            for name in backbones.BACKBONES}


def main(argv=None):
    args = parse_args(argv)
    images = np.random.default_rng(0).integers(0, 256, (args.batch, args.size, args.size, 3),
                                               np.uint8)
    nets = net_kwargs(args)
    columns = {name: backbones.table1_columns(nnx.eval_shape(
                   lambda kw=kw: FCN(NUM_CLASSES, **kw, width=args.width, rngs=nnx.Rngs(0))))
               for name, kw in nets.items()}
    times = alternating_ms({name: inference_runner(args, images, **kw)
                            for name, kw in nets.items()}, args.rounds, args.steps)
    print(f"FCN-32s, width {args.width}, {args.size}x{args.size}, batch {args.batch}, "
          f"{NUM_CLASSES} classes, {backends.describe('auto')}; median of {args.rounds} "
          f"alternating rounds x {args.steps} calls")
    print("| backbone | parameters | receptive field | max stride | ms per image | x VGG16 | "
          "paper: mean IU, ms, x VGG16, parameters |")
    print("|---|---|---|---|---|---|---|")
    for name, c in columns.items():
        iu, ms, millions = PAPER[name]
        print(f"| {name} | {c['parameters'] / 1e6:.3f}M | {c['receptive_field']} | "
              f"{c['max_stride']} | {times[name] / args.batch:.2f} | "
              f"{times[name] / times[REFERENCE]:.2f} | {iu}, {ms}, "
              f"{ms / PAPER[REFERENCE][1]:.2f}, {millions}M |")


if __name__ == "__main__":
    main()
