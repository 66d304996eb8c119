"""Dense (convolutionalized) inference vs naive sliding-window classification (paper, 3.1).

    .venv/bin/python -m benchmarks.sliding_window --sizes 64 128 256

For each square image size, the same patch classifier labels every window at its stride, once
by cutting out and classifying each window (batched crops) and once by running the
convolutionalized net over the whole image. Prints wall time, XLA's FLOP count and the speed-up.
"""

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from fcn_jax.models.patch import PatchClassifier, naive_sliding_window, window_grid


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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--patch", type=int, default=32)
    args = parser.parse_args()
    model = PatchClassifier(7, patch_size=args.patch, rngs=nnx.Rngs(0))
    graphdef, state = nnx.split(model)

    def naive(s, x):
        return naive_sliding_window(nnx.merge(graphdef, s), x)

    def dense(s, x):
        return nnx.merge(graphdef, s).dense(x)

    print(f"patch classifier, {args.patch}x{args.patch} windows at stride {model.stride}, "
          f"{jax.devices()[0].device_kind}\n")
    print("| image | windows | naive ms | dense ms | speed-up | naive GFLOP | dense GFLOP |")
    print("|---|---|---|---|---|---|---|")
    for size in args.sizes:
        x = jnp.asarray(np.random.default_rng(size).integers(0, 256, (1, size, size, 3)),
                        jnp.uint8)
        rows, cols = window_grid(size, size, args.patch, model.stride)
        t_naive, t_dense = seconds(naive, state, x), seconds(dense, state, x)
        print(f"| {size}x{size} | {rows * cols} | {1e3 * t_naive:.1f} | {1e3 * t_dense:.1f} | "
              f"{t_naive / t_dense:.1f}x | {flops(naive, state, x) / 1e9:.3f} | "
              f"{flops(dense, state, x) / 1e9:.3f} |")


if __name__ == "__main__":
    main()
