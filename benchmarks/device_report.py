"""The FCN on the accelerator this process sees: the report to run the day a GPU or TPU is at hand.

    .venv/bin/python -m benchmarks.device_report           # the paper's net: minutes on a GPU
    .venv/bin/python -m benchmarks.device_report --tiny    # the same code paths, seconds on a CPU

The net is the reference release's FCN-8s (``model.caffe=True``: full-width VGG16, conv1_1
padded by 100, VALID 7x7 fc6) at 500x500, the size of the paper's PASCAL runs. For each compute
dtype (float32; bfloat16 = ``model.compute_dtype``) and batch (1 and 20), and each parallel mode
(``mesh``: jit over a device mesh; ``pmap``), one row: the train step's images/s, compile
seconds, model FLOPs utilisation (XLA's cost analysis of the step over its time and the
devices' peak, from the table below or ``--peak-tflops``), XLA's buffer total of the step per
device; beside it the inference milliseconds per image of the same batch. Last, the device
allocator's peak over the whole report, where the backend keeps one (GPU, TPU). With torch
installed for the same device (CUDA, or the CPU), the standard-layout FCN-8s
(``benchmarks/torch_fcn.py``, the same layers without the 100-pixel padding) is timed in both
libraries, alternating, and the ratio printed.
The goals each figure is to be judged by are in docs/performance.md.
"""

import argparse
import functools
import math
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from benchmarks.fcn_vs_torch import (NUM_CLASSES, jax_runners, seconds_per_call, torch_runners,
                                     xla_buffer_bytes)
from fcn_jax import backends, steps
from fcn_jax.models.caffe import CaffeFCN
from fcn_jax.parallel import MODES, DataParallel

# Dense peak TFLOP/s per device: (float32 as XLA runs it by default -- TF32 tensor cores on
# NVIDIA Ampere and later, bf16 passes on TPU -- and bfloat16). Matched by device_kind prefix.
PEAK_TFLOPS = {
    "NVIDIA H200": (494.7, 989.4),
    "NVIDIA H100 PCIe": (378.0, 756.0),
    "NVIDIA H100": (494.7, 989.4),  # SXM
    "NVIDIA A100": (156.0, 312.0),
    "NVIDIA L40S": (183.0, 362.0),
    "NVIDIA L4": (60.0, 121.0),
    "NVIDIA A10G": (35.0, 70.0),
    "TPU v6 lite": (918.0, 918.0),
    "TPU v5p": (459.0, 459.0),
    "TPU v5 lite": (197.0, 197.0),
    "TPU v5": (459.0, 459.0),
    "TPU v4": (275.0, 275.0),
}
DTYPES = ("float32", "bfloat16")
FULL = {"width": 1.0, "size": 500, "batches": (1, 20), "steps": 10}
TINY = {"width": 0.0625, "size": 64, "batches": (2,), "steps": 2}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true",
                        help=f"width {TINY['width']}, {TINY['size']}x{TINY['size']}, batches "
                             f"{TINY['batches']}: checks the script, measures nothing")
    parser.add_argument("--dtypes", nargs="+", default=list(DTYPES), choices=DTYPES)
    parser.add_argument("--modes", nargs="+", default=["mesh", "pmap"], choices=MODES)
    parser.add_argument("--steps", type=int, help="timed steps per row (default 10; tiny 2)")
    parser.add_argument("--fast-paths", default="auto", choices=backends.FAST_PATHS)
    parser.add_argument("--peak-tflops", type=float, default=0.0,
                        help="the device's dense peak for MFU where the table lacks it")
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch comparison")
    args = parser.parse_args(argv)
    shape = TINY if args.tiny else FULL
    args.width, args.size, args.batches = shape["width"], shape["size"], shape["batches"]
    args.steps = args.steps or shape["steps"]
    if args.steps < 1 or args.peak_tflops < 0:
        parser.error("--steps must be >= 1 and --peak-tflops >= 0")
    return args


def peak_tflops(device_kind: str, dtype: str, override: float) -> float | None:
    """The dense peak of one device in ``dtype`` (None where unknown, e.g. a CPU)."""
    if override:
        return override
    kind = next((k for k in PEAK_TFLOPS if device_kind.startswith(k)), None)
    return PEAK_TFLOPS[kind][DTYPES.index(dtype)] if kind else None


def step_flops(compiled) -> float:
    """FLOPs of one call of a compiled executable, from XLA's cost analysis (0 if none)."""
    analysis = compiled.cost_analysis()
    if isinstance(analysis, (list, tuple)):  # older jax: one dict per program
        analysis = analysis[0] if analysis else {}
    return float((analysis or {}).get("flops", 0.0))


def allocator_peak_bytes() -> int | None:
    """The largest allocator peak of the local devices so far (None: not reported, a CPU)."""
    peaks = [(d.memory_stats() or {}).get("peak_bytes_in_use") for d in jax.local_devices()]
    return max((p for p in peaks if p is not None), default=None)


def batch_arrays(batch: int, size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8)
    labels = rng.integers(0, NUM_CLASSES, (batch, size, size)).astype(np.uint8)
    labels[:, :8] = 255  # some ignored pixels, as VOC's borders
    return images, labels


def train_row(model, mode: str, batch: int, args) -> dict:
    """Compile and time the trainer's step for one parallel mode: images/s, compile s, FLOPs."""
    graphdef, params, constants = nnx.split(model, nnx.Param, ...)
    params = jax.tree.map(np.array, params)  # host copies: the step donates its state
    tx = optax.sgd(1e-3, momentum=0.9)
    devices = math.gcd(batch, jax.device_count())  # every device takes whole examples
    parallel = DataParallel(mode, devices if mode == "mesh" else min(devices,
                                                                      jax.local_device_count()))
    parallel.check_batch_size(batch, "batch")
    state = parallel.put_replicated({"step": np.zeros((), np.int32), "params": params,
                                     "opt_state": tx.init(params), "rng": jax.random.PRNGKey(0)})
    step = parallel.wrap(functools.partial(
        steps.train_step, graphdef=graphdef, constants=constants, tx=tx,
        num_classes=NUM_CLASSES, normalize_loss=True, class_weights=None), num_args=2,
        donate=(0,))
    images, labels = batch_arrays(batch, args.size)
    data = parallel.put_batch({"image": images, "label": labels})
    start = time.perf_counter()
    compiled = step.lower(state, data).compile()
    compile_s = time.perf_counter() - start
    holder = [state]

    def once():
        holder[0], metrics = compiled(holder[0], data)
        jax.block_until_ready((holder[0], metrics))
    once()  # warm-up
    seconds, _ = seconds_per_call(once, args.steps)
    flops = step_flops(compiled) * (parallel.num_devices if mode == "pmap" else 1)
    return {"seconds": seconds, "compile_s": compile_s, "flops": flops,
            "devices": parallel.num_devices, "memory": xla_buffer_bytes(compiled)}


def inference_ms_per_image(model, batch: int, args) -> float:
    """Logits of a batch on one device, jit-compiled: milliseconds per image."""
    graphdef, params, constants = nnx.split(model, nnx.Param, ...)
    infer = jax.jit(lambda p, x: nnx.merge(graphdef, p, constants)(x),
                    compiler_options=backends.compiler_options())
    images = jnp.asarray(batch_arrays(batch, args.size)[0])
    compiled = infer.lower(params, images).compile()

    def run():
        jax.block_until_ready(compiled(params, images))
    run()
    seconds, _ = seconds_per_call(run, args.steps)
    return 1000.0 * seconds / batch


def torch_device() -> str | None:
    """The torch device on the same hardware as JAX's backend (None: no such torch)."""
    try:
        import torch
    except ImportError:
        return None
    backend = jax.default_backend()
    if backend == "gpu" and torch.cuda.is_available():
        return "cuda"
    return "cpu" if backend == "cpu" else None


def torch_comparison(args, dtype: str, device: str) -> dict:
    """The standard-layout FCN-8s in JAX and PyTorch, alternating: train at the larger
    batch, inference at batch 1, as images/s each."""
    batch = max(args.batches)
    ns = argparse.Namespace(variant="fcn8s", width=args.width, batch=batch, cpu_devices=1,
                            fast_paths=args.fast_paths, threads=os.cpu_count())
    images, labels = batch_arrays(batch, args.size)
    ours = jax_runners(ns, images, labels, compute_dtype=dtype, num_devices=1)
    theirs = torch_runners(ns, images, labels, device=device, bfloat16=dtype == "bfloat16")
    rates = {}
    for phase in ("train", "infer"):
        times = {"JAX": [], "PyTorch": []}
        for _ in range(3):
            for name, runner in (("JAX", ours), ("PyTorch", theirs)):
                runner[phase]()
                times[name].append(seconds_per_call(runner[phase], args.steps)[0])
        rates[phase] = {name: batch / float(np.median(t)) for name, t in times.items()}
    return rates


def main(argv=None):
    args = parse_args(argv)
    device = jax.devices()[0]
    print(f"# device report: {device.device_kind} x {jax.device_count()} "
          f"({jax.default_backend()}), jax {jax.__version__}, {backends.describe(args.fast_paths)}")
    print(f"Caffe-layout FCN-8s, width {args.width}, {args.size}x{args.size}, {args.steps} timed "
          "steps per row (after one untimed)\n")
    print("| dtype | batch | mode | devices | train img/s | compile s | GFLOP/step | MFU | "
          "XLA buffers MiB/device | inference ms/img |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for dtype in args.dtypes:
        model = CaffeFCN(NUM_CLASSES, variant="fcn8s", width=args.width, compute_dtype=dtype,
                         fast_paths=args.fast_paths, rngs=nnx.Rngs(0))
        peak = peak_tflops(device.device_kind, dtype, args.peak_tflops)
        for batch in args.batches:
            ms = inference_ms_per_image(model, batch, args)
            for mode in args.modes:
                row = train_row(model, mode, batch, args)
                achieved = row["flops"] / row["seconds"]  # FLOP/s over all the devices
                mfu = (f"{100 * achieved / (peak * 1e12 * row['devices']):.1f}%"
                       if peak and row["flops"] else "-")
                print(f"| {dtype} | {batch} | {mode} | {row['devices']} | "
                      f"{batch / row['seconds']:.1f} | {row['compile_s']:.1f} | "
                      f"{row['flops'] / 1e9:.1f} | {mfu} | "
                      f"{row['memory'] / 2**20:.0f} | {ms:.2f} |")
    peak_bytes = allocator_peak_bytes()
    peak_text = ("not reported by this backend" if peak_bytes is None
                 else f"{peak_bytes / 2**20:.0f} MiB")
    print(f"\nallocator peak over the report: {peak_text}")
    device_name = None if args.no_torch else torch_device()
    if device_name is None:
        print("\nPyTorch: not compared (--no-torch, or no torch build for this device)")
        return
    print(f"\nStandard-layout FCN-8s, JAX beside PyTorch on {device_name} (medians of 3 "
          "alternating rounds):\n\n| dtype | phase | JAX img/s | PyTorch img/s | JAX / PyTorch |"
          "\n|---|---|---|---|---|")
    for dtype in args.dtypes:
        for phase, rates in torch_comparison(args, dtype, device_name).items():
            print(f"| {dtype} | {phase} | {rates['JAX']:.1f} | {rates['PyTorch']:.1f} | "
                  f"{rates['JAX'] / rates['PyTorch']:.2f} |")


if __name__ == "__main__":
    main()
