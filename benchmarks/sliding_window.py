"""Dense (convolutionalized) inference vs naive sliding-window classification (paper, 3.1).

    .venv/bin/python -m benchmarks.sliding_window --sizes 64 128 256
    .venv/bin/python -m benchmarks.sliding_window --net vgg16 --sizes 192 288 384 \\
        --weights workdirs/classifier/vgg16_classifier.npz

For each square image size, a classifier labels every window at its stride, once by cutting
out and classifying each window (batched crops) and once by running the convolutionalized net
over the whole image. Prints wall time, XLA's FLOP count and the speed-up. ``--net patch``: the
small patch classifier of ``models/patch.py`` (32x32 windows, stride 4, unpadded: dense equals
naive exactly). ``--net vgg16``: the VGG16 classifier the FCNs start from (96x96 windows,
stride 32; ``--weights``: its trained file, else a random one of the same shape, which times
the same), convolutionalized through the torchvision import path as the FCN trunk is, with fc8
as a 1x1 convolution on fc7.
"""

import argparse
import dataclasses
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from configs import classifier as classifier_config
from fcn_jax import inputs
from fcn_jax.data import objects
from fcn_jax.models import pretrained
from fcn_jax.models.classifier import (Classifier, load_state_dict, input_size,
                                       state_dict)
from fcn_jax.models.fcn import FCN
from fcn_jax.models.patch import PatchClassifier, naive_sliding_window, window_grid
from fcn_jax.models.vgg import TRUNK_STRIDE


@dataclasses.dataclass(frozen=True)
class WindowNet:
    """A window classifier and its convolutionalized form, as functions of their state."""

    name: str
    patch_size: int
    stride: int
    classify: Callable  # (state, crops [N, p, p, 3]) -> scores [N, C]
    dense: Callable     # (state, images [B, H, W, 3]) -> scores [B, H', W', C]
    state: object


@dataclasses.dataclass(frozen=True)
class Windows:
    """What ``naive_sliding_window`` reads of a model: window size, stride, and a call."""

    patch_size: int
    stride: int
    call: Callable

    def __call__(self, crops):
        return self.call(crops)


def patch_net(patch: int, num_classes: int = 7) -> WindowNet:
    """The patch classifier of models/patch.py."""
    graphdef, state = nnx.split(PatchClassifier(num_classes, patch_size=patch,
                                                rngs=nnx.Rngs(0)))
    return WindowNet(f"patch classifier, {patch}x{patch} windows", patch, 4,
                     lambda s, x: nnx.merge(graphdef, s)(x),
                     lambda s, x: nnx.merge(graphdef, s).dense(x), state)


def vgg_net(weights_file: str = "") -> WindowNet:
    """configs/classifier.py's VGG16 classifier (trained weights from ``weights_file``, else
    random) and the FCN trunk it becomes, with fc8 applied at every stride-32 cell."""
    model_config = classifier_config.get_config().model
    shape = {"width": model_config.width, "fc_channels": model_config.fc_channels or None,
             "fc6_kernel": model_config.fc6_kernel}
    classifier = Classifier(objects.NUM_CLASSES, **shape, rngs=nnx.Rngs(params=0))
    if weights_file:
        load_state_dict(classifier, pretrained.read_arrays(weights_file))
    arrays = state_dict(classifier)
    fcn = FCN(objects.NUM_CLASSES, variant="fcn32s", **shape, rngs=nnx.Rngs(params=0))
    pretrained.load_reference(fcn, arrays)
    fc8 = (jnp.asarray(arrays["classifier.6.weight"].T), jnp.asarray(arrays["classifier.6.bias"]))
    graphs = (nnx.graphdef(classifier), nnx.graphdef(fcn))
    state = (nnx.state(classifier), nnx.state(fcn), fc8)

    def classify(s, crops):
        return nnx.merge(graphs[0], s[0])(crops)

    def dense(s, images):
        fc7 = nnx.merge(graphs[1], s[1]).trunk(inputs.normalized(images))["fc7"]
        return fc7 @ s[2][0] + s[2][1]

    window = input_size(model_config.fc6_kernel)
    return WindowNet(f"VGG16 classifier (width {model_config.width}), {window}x{window} "
                     "windows", window, TRUNK_STRIDE, classify, dense, state)


def flops(fn, *args) -> float:
    """XLA's estimate of the floating-point operations of one call."""
    cost = jax.jit(fn).lower(*args).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    return float(cost.get("flops", float("nan")))


def seconds(fn, *args, repeats: int = 3) -> float:
    """Best-of-``repeats`` wall time of a compiled call."""
    compiled = jax.jit(fn)
    jax.block_until_ready(compiled(*args))
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(compiled(*args))
        best = min(best, time.perf_counter() - start)
    return best


def speed_rows(net: WindowNet, sizes) -> list[dict]:
    """Wall time and FLOPs of naive and dense inference on one image of each square size."""
    p = net.patch_size
    # The naive loop runs in a lax.map, whose body XLA's cost analysis counts once: its FLOPs
    # are those of classifying one window times the number of windows.
    window_flops = flops(net.classify, net.state, jnp.zeros((1, p, p, 3), jnp.uint8))
    rows = []
    for size in sizes:
        if size < p:
            raise ValueError(f"--sizes {size}: smaller than the {p}x{p} window")
        x = jnp.asarray(np.random.default_rng(size).integers(0, 256, (1, size, size, 3)),
                        jnp.uint8)
        grid = window_grid(size, size, p, net.stride)
        windows = grid[0] * grid[1]

        def naive(s, images, batch=min(256, windows)):
            model = Windows(p, net.stride, lambda crops: net.classify(s, crops))
            return naive_sliding_window(model, images, batch_size=batch)

        t_naive, t_dense = seconds(naive, net.state, x), seconds(net.dense, net.state, x)
        rows.append({"size": size, "stride": net.stride, "windows": windows,
                     "naive_ms": 1e3 * t_naive,
                     "dense_ms": 1e3 * t_dense, "speedup": t_naive / t_dense,
                     "naive_gflop": windows * window_flops / 1e9,
                     "dense_gflop": flops(net.dense, net.state, x) / 1e9})
    return rows


def speed_table(rows: list[dict]) -> str:
    """The rows of ``speed_rows`` as a markdown table."""
    lines = ["| image | windows | naive ms | dense ms | speed-up | naive GFLOP | dense GFLOP |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['size']}x{r['size']} | {r['windows']} | {r['naive_ms']:.1f} | "
              f"{r['dense_ms']:.1f} | {r['speedup']:.1f}x | {r['naive_gflop']:.3f} | "
              f"{r['dense_gflop']:.3f} |" for r in rows]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--net", choices=("patch", "vgg16"), default="patch")
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--patch", type=int, default=32, help="--net patch: window side")
    parser.add_argument("--weights", default="",
                        help="--net vgg16: the classifier's .npz (make classifier)")
    args = parser.parse_args()
    try:
        net = vgg_net(args.weights) if args.net == "vgg16" else patch_net(args.patch)
        rows = speed_rows(net, args.sizes)
    except (ValueError, OSError) as error:
        raise SystemExit(f"error: {error}") from None
    print(f"{net.name} at stride {net.stride}, {jax.devices()[0].device_kind}\n")
    print(speed_table(rows))


if __name__ == "__main__":
    main()
