"""Train-step and inference throughput of the JAX FCN beside the same net in PyTorch.

    .venv/bin/python -m benchmarks.fcn_vs_torch --variant fcn8s --width 0.25 --size 224 --batch 8

Both run in this process on the same inputs, fp32, SGD with momentum, mean pixel loss with
ignore label 255. Prints a markdown table (images/s and the JAX / PyTorch ratio) and the JAX
compile time. Needs the optional torch extra (requirements-torch.txt).
"""

import argparse
import functools
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import torch
from flax import nnx

from benchmarks.torch_fcn import TorchFCN
from fcn_jax import steps
from fcn_jax.models.fcn import FCN

NUM_CLASSES = 21


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", default="fcn8s", choices=["fcn32s", "fcn16s", "fcn8s"])
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per measurement")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help="torch intra-op threads (XLA uses every core)")
    return parser.parse_args()


def timed(fn, warmup: int, steps: int) -> float:
    """Seconds per call of ``fn`` (which must block until its result is ready)."""
    for _ in range(warmup):
        fn()
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - start) / steps


def jax_benchmark(args, images: np.ndarray, labels: np.ndarray) -> dict:
    """JAX: compile time, train step and inference seconds per batch."""
    model = FCN(NUM_CLASSES, variant=args.variant, width=args.width, rngs=nnx.Rngs(0))
    graphdef, params, constants = nnx.split(model, nnx.Param, ...)
    tx = optax.sgd(1e-3, momentum=0.9)
    state = {"step": jnp.zeros((), jnp.int32), "params": params, "opt_state": tx.init(params),
             "rng": jax.random.PRNGKey(0)}
    train = jax.jit(functools.partial(
        steps.train_step, graphdef=graphdef, constants=constants, tx=tx,
        num_classes=NUM_CLASSES, normalize_loss=True, class_weights=None, axis_name=None),
        donate_argnums=0)
    batch = {"image": jnp.asarray(images), "label": jnp.asarray(labels)}
    start = time.perf_counter()
    compiled = train.lower(state, batch).compile()
    compile_s = time.perf_counter() - start
    holder = [state]

    def train_once():
        holder[0], metrics = compiled(holder[0], batch)
        jax.block_until_ready(metrics["loss"])

    infer = jax.jit(lambda p, x: nnx.merge(graphdef, p, constants)(x))
    return {"compile_s": compile_s,
            "train_s": timed(train_once, args.warmup, args.steps),
            "infer_s": timed(lambda: jax.block_until_ready(infer(holder[0]["params"],
                                                                 batch["image"])),
                             args.warmup, args.steps)}


def torch_benchmark(args, images: np.ndarray, labels: np.ndarray) -> dict:
    """PyTorch: train step and inference seconds per batch."""
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = TorchFCN(NUM_CLASSES, args.variant, args.width)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    x = torch.from_numpy(images)
    y = torch.from_numpy(labels.astype(np.int64))

    def train_once():
        optimizer.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(x), y, ignore_index=255)
        loss.backward()
        optimizer.step()

    def infer_once():
        with torch.inference_mode():
            model(x)

    model.train()
    train_s = timed(train_once, args.warmup, args.steps)
    model.eval()
    return {"train_s": train_s, "infer_s": timed(infer_once, args.warmup, args.steps)}


def main():
    args = parse_args()
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (args.batch, args.size, args.size, 3)).astype(np.uint8)
    labels = rng.integers(0, NUM_CLASSES, (args.batch, args.size, args.size)).astype(np.uint8)
    labels[rng.random(labels.shape) < 0.05] = 255
    ours = jax_benchmark(args, images, labels)
    theirs = torch_benchmark(args, images, labels)
    print(f"{args.variant}, width {args.width}, {args.size}x{args.size}, batch {args.batch}, "
          f"fp32, {jax.devices()[0].device_kind} ({os.cpu_count()} cores), jax {jax.__version__}, "
          f"torch {torch.__version__} ({args.threads} threads)")
    print(f"JAX compile time: {ours['compile_s']:.1f} s\n")
    print("| phase | JAX img/s | PyTorch img/s | JAX / PyTorch |\n|---|---|---|---|")
    for phase in ("train", "infer"):
        jax_ips, torch_ips = args.batch / ours[f"{phase}_s"], args.batch / theirs[f"{phase}_s"]
        print(f"| {phase} | {jax_ips:.1f} | {torch_ips:.1f} | {jax_ips / torch_ips:.2f} |")


if __name__ == "__main__":
    main()
