"""Train-step and inference throughput of the JAX FCN beside the same net in PyTorch.

Three phases: ``train`` (one SGD step), ``infer`` (the logits [B, H, W, 21]) and ``predict``
(per-pixel labels, the argmax of the logits: what evaluation and deployment compute).

    .venv/bin/python -m benchmarks.fcn_vs_torch --variant fcn8s --width 0.25 --size 224 --batch 8

Both run in this process on the same inputs, fp32, SGD with momentum, mean pixel loss with
ignore label 255, with the same number of threads (XLA's CPU pool has one per core; torch is
set to ``--threads``, default the core count). The two are timed in alternation, ``--rounds``
times ``--steps`` steps each, so load from other processes hits both alike; the table gives
medians over rounds. Each phase's timed steps in a round follow one untimed step of it, so
the table gives each phase's steady state, as a loop of it runs: the first call after
another phase is slower (measured after a train step: ~20 ms for JAX's inference, with no
page faults; ~5 ms for PyTorch's). On a machine shared with other jobs, set
OMP_WAIT_POLICY=PASSIVE: torch's OpenMP threads otherwise spin while waiting and lose most of
their speed to the contention (XLA's pool is not affected alike). Also prints the JAX train
step's compile time, XLA's buffer total per device (arguments + outputs + temporaries, less
donated aliases) and each side's minor page faults per step: glibc returns large freed
blocks to the kernel, so a step that allocates them again pays for fresh zeroed pages (run
the script under a different malloc configuration, e.g. MALLOC_MMAP_MAX_=0
MALLOC_TRIM_THRESHOLD_=68719476736 MALLOC_ARENA_MAX=1, to see both sides without that cost). ``--cpu-devices N`` runs JAX the
way ``parallel.cpu_devices=N`` trains: the CPU split into N XLA devices, the batch sharded
over them (PyTorch's threads are unchanged). Needs the optional torch extra
(requirements-torch.txt).
"""

import argparse
import functools
import os
import platform
import resource
import sys
import time

import jax
import numpy as np
import optax
from flax import nnx

from fcn_jax import backends, steps
from fcn_jax.backends.cpu import cpu_devices_set_by_environment, start_cpu_devices
from fcn_jax.models.fcn import FCN
from fcn_jax.parallel import DataParallel

NUM_CLASSES = 21
PHASES = ("train", "infer", "predict")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", default="fcn8s", choices=["fcn32s", "fcn16s", "fcn8s"])
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5, help="alternating timed rounds")
    parser.add_argument("--steps", type=int, default=3, help="steps per round")
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help="torch intra-op threads (XLA uses every core)")
    parser.add_argument("--fast-paths", default="auto", choices=backends.FAST_PATHS,
                        help="JAX kernels (model.fast_paths): auto = the CPU fast paths here")
    parser.add_argument("--cpu-devices", type=int, default=1,
                        help="JAX: split the CPU into this many devices and shard the batch "
                             "over them (parallel.cpu_devices)")
    return parser.parse_args()


def seconds_per_call(fn, steps: int) -> tuple[float, float]:
    """Mean seconds and minor page faults per call of ``fn`` (which must block until done)."""
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    seconds = (time.perf_counter() - start) / steps
    return seconds, (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / steps


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo where there is one, else the architecture."""
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f
                        if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.machine()


def malloc_settings() -> str:
    """The glibc malloc environment variables this process was started with, if any."""
    names = sorted(k for k in os.environ if k.startswith("MALLOC_") or k == "GLIBC_TUNABLES")
    return ", ".join(f"{k}={os.environ[k]}" for k in names) or "glibc defaults"


def xla_buffer_bytes(compiled) -> int:
    """Arguments + outputs + temporaries of a compiled XLA executable, less aliased inputs."""
    m = compiled.memory_analysis()
    return (m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes
            - m.alias_size_in_bytes)


def jax_runners(args, images: np.ndarray, labels: np.ndarray, compute_dtype: str = "float32",
                num_devices: int | None = None) -> dict:
    """JAX: compiled train step and inference as blocking callables, plus compile facts.

    The train step is the trainer's (``DataParallel.wrap``: state replicated, batch sharded
    over the devices: ``num_devices``, by default ``--cpu-devices`` or all the environment
    made); inference and prediction keep their outputs sharded like the batch.
    """
    model = FCN(NUM_CLASSES, variant=args.variant, width=args.width,
                fast_paths=args.fast_paths, compute_dtype=compute_dtype, rngs=nnx.Rngs(0))
    graphdef, params, constants = nnx.split(model, nnx.Param, ...)
    tx = optax.sgd(1e-3, momentum=0.9)
    if num_devices is None:
        num_devices = 0 if cpu_devices_set_by_environment() else args.cpu_devices
    parallel = DataParallel("mesh", num_devices)
    parallel.check_batch_size(args.batch, "--batch")
    state = parallel.put_replicated({"step": np.zeros((), np.int32), "params": params,
                                     "opt_state": tx.init(params),
                                     "rng": jax.random.PRNGKey(0)})
    train = parallel.wrap(functools.partial(
        steps.train_step, graphdef=graphdef, constants=constants, tx=tx,
        num_classes=NUM_CLASSES, normalize_loss=True, class_weights=None), num_args=2,
        donate=(0,))
    sharded = {"in_shardings": (parallel.replicated, parallel.sharded),
               "out_shardings": parallel.sharded,
               "compiler_options": backends.compiler_options(parallel.local_device_count)}
    infer = jax.jit(lambda p, x: nnx.merge(graphdef, p, constants)(x), **sharded)
    predict = jax.jit(functools.partial(steps.predict, graphdef=graphdef, constants=constants),
                      **sharded)
    batch = parallel.put_batch({"image": images, "label": labels})
    start = time.perf_counter()
    train_compiled = train.lower(state, batch).compile()
    compile_s = time.perf_counter() - start
    infer_compiled = infer.lower(state["params"], batch["image"]).compile()
    predict_compiled = predict.lower(state["params"], batch["image"]).compile()
    holder = [state]

    def train_once():
        holder[0], metrics = train_compiled(holder[0], batch)
        jax.block_until_ready((holder[0], metrics))  # the new state too, not only the loss

    def infer_once():
        jax.block_until_ready(infer_compiled(holder[0]["params"], batch["image"]))

    def predict_once():
        jax.block_until_ready(predict_compiled(holder[0]["params"], batch["image"]))

    return {"train": train_once, "infer": infer_once, "predict": predict_once,
            "compile_s": compile_s, "devices": parallel.num_devices,
            "train_bytes": xla_buffer_bytes(train_compiled),
            "infer_bytes": xla_buffer_bytes(infer_compiled)}


def torch_runners(args, images: np.ndarray, labels: np.ndarray, device: str = "cpu",
                  bfloat16: bool = False) -> dict:
    """PyTorch: train step and inference as blocking callables, on ``device`` (``cuda``:
    synchronised after each call), in float32 or under bfloat16 autocast."""
    torch = require_torch()
    from benchmarks.torch_fcn import TorchFCN
    if device == "cpu":
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = TorchFCN(NUM_CLASSES, args.variant, args.width).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    x = torch.from_numpy(images).to(device)
    y = torch.from_numpy(labels.astype(np.int64)).to(device)
    autocast = torch.autocast(device.split(":")[0], dtype=torch.bfloat16, enabled=bfloat16)
    done = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)

    def train_once():
        model.train()
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            logits = model(x)
        loss = torch.nn.functional.cross_entropy(logits.float(), y, ignore_index=255)
        loss.backward()
        optimizer.step()
        done()

    def infer_once():
        model.eval()
        with torch.inference_mode(), autocast:
            model(x)
        done()

    def predict_once():
        model.eval()
        with torch.inference_mode(), autocast:
            model(x).argmax(1)
        done()

    return {"train": train_once, "infer": infer_once, "predict": predict_once}


def require_torch():
    """torch, or a one-line exit saying how to install it (--help works without it)."""
    try:
        import torch
    except ImportError:
        sys.exit("error: this benchmark compares against PyTorch, which is not installed: "
                 ".venv/bin/pip install -r requirements-torch.txt")
    return torch


def main():
    args = parse_args()
    torch = require_torch()
    if cpu_devices_set_by_environment():
        print("JAX_NUM_CPU_DEVICES or XLA_FLAGS set the CPU device count: JAX uses all of "
              "those devices, not --cpu-devices")
    start_cpu_devices(args.cpu_devices)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (args.batch, args.size, args.size, 3)).astype(np.uint8)
    labels = rng.integers(0, NUM_CLASSES, (args.batch, args.size, args.size)).astype(np.uint8)
    labels[rng.random(labels.shape) < 0.05] = 255
    runners = {"JAX": jax_runners(args, images, labels),
               "PyTorch": torch_runners(args, images, labels)}
    times = {(lib, phase): [] for lib in runners for phase in PHASES}
    faults = {key: [] for key in times}
    for _ in range(args.rounds):
        for lib, phase in times:
            runners[lib][phase]()  # untimed: the first call after another phase is slower
            seconds, page_faults = seconds_per_call(runners[lib][phase], args.steps)
            times[lib, phase].append(seconds)
            faults[lib, phase].append(page_faults)
    ours = runners["JAX"]
    print(f"{args.variant}, width {args.width}, {args.size}x{args.size}, batch {args.batch}, "
          f"fp32, {backends.describe(args.fast_paths)} | {cpu_name()}, {os.cpu_count()} cores | "
          f"jax {jax.__version__} ({ours['devices']} {jax.default_backend().upper()} device(s), "
          f"XLA CPU pool: {os.cpu_count()} threads), "
          f"torch {torch.__version__} ({torch.get_num_threads()} threads, OMP_WAIT_POLICY="
          f"{os.environ.get('OMP_WAIT_POLICY', 'unset')}) | malloc: {malloc_settings()} | "
          f"median of {args.rounds} alternating rounds x {args.steps} steps")
    print(f"JAX train step: compile {ours['compile_s']:.1f} s, XLA buffers per device "
          f"{ours['train_bytes'] / 2**20:.0f} MiB (inference {ours['infer_bytes'] / 2**20:.0f}"
          " MiB)\n")
    print("| phase | JAX img/s | PyTorch img/s | JAX / PyTorch | page faults per step, JAX "
          "/ PyTorch |\n|---|---|---|---|---|")
    for phase in PHASES:
        jax_ips, torch_ips = (args.batch / np.median(times[lib, phase])
                              for lib in ("JAX", "PyTorch"))
        jax_faults, torch_faults = (np.median(faults[lib, phase]) for lib in ("JAX", "PyTorch"))
        print(f"| {phase} | {jax_ips:.1f} | {torch_ips:.1f} | {jax_ips / torch_ips:.2f} | "
              f"{jax_faults:.0f} / {torch_faults:.0f} |")


if __name__ == "__main__":
    main()
