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


def speed_rows(sizes, patch: int = 32, num_classes: int = 7) -> list[dict]:
    """Wall time and FLOPs of naive and dense inference on one image of each square size."""
    model = PatchClassifier(num_classes, patch_size=patch, rngs=nnx.Rngs(0))
    graphdef, state = nnx.split(model)

    def classify(s, x):
        return nnx.merge(graphdef, s)(x)

    def dense(s, x):
        return nnx.merge(graphdef, s).dense(x)

    # The naive loop runs in a lax.map, whose body XLA's cost analysis counts once: its FLOPs
    # are those of classifying one window times the number of windows.
    window_flops = flops(classify, state, jnp.zeros((1, patch, patch, 3), jnp.uint8))
    rows = []
    for size in sizes:
        x = jnp.asarray(np.random.default_rng(size).integers(0, 256, (1, size, size, 3)),
                        jnp.uint8)
        grid = window_grid(size, size, patch, model.stride)
        windows = grid[0] * grid[1]

        def naive(s, images, batch=min(256, windows)):
            return naive_sliding_window(nnx.merge(graphdef, s), images, batch_size=batch)

        t_naive, t_dense = seconds(naive, state, x), seconds(dense, state, x)
        rows.append({"size": size, "stride": model.stride, "windows": windows,
                     "naive_ms": 1e3 * t_naive,
                     "dense_ms": 1e3 * t_dense, "speedup": t_naive / t_dense,
                     "naive_gflop": windows * window_flops / 1e9,
                     "dense_gflop": flops(dense, state, x) / 1e9})
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
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--patch", type=int, default=32)
    args = parser.parse_args()
    rows = speed_rows(args.sizes, args.patch)
    print(f"patch classifier, {args.patch}x{args.patch} windows at stride {rows[0]['stride']}, "
          f"{jax.devices()[0].device_kind}\n")
    print(speed_table(rows))


if __name__ == "__main__":
    main()
