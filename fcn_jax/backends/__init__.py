"""What differs per backend, behind one seam: kernels, XLA options, the CPU device split.

The model asks ``kernels(config.model.fast_paths)`` for its operations and never picks a
kernel by layer name. ``auto`` gives the CPU fast paths (``backends/cpu.py``) on the CPU
backend and the plain XLA formulation (``backends/kernels.py``) on GPU and TPU; ``off`` gives
the plain one everywhere. The values are the same either way; only speed and memory differ.
"""

import jax

from fcn_jax.backends import cpu
from fcn_jax.backends.kernels import PLAIN_KERNELS, Kernels

FAST_PATHS = ("auto", "off")


def kernels(fast_paths: str = "auto", backend: str | None = None) -> Kernels:
    """The kernel set for ``model.fast_paths`` on ``backend`` (default: JAX's default one)."""
    if fast_paths not in FAST_PATHS:
        raise ValueError(f"model.fast_paths={fast_paths!r}: expected one of {FAST_PATHS}")
    backend = backend or jax.default_backend()
    return cpu.FAST_KERNELS if fast_paths == "auto" and backend == "cpu" else PLAIN_KERNELS


def describe(fast_paths: str) -> str:
    """One line for the start of a run: which kernels run, on which backend, and why."""
    backend = jax.default_backend()
    return (f"kernels: {kernels(fast_paths, backend).name} (model.fast_paths={fast_paths}, "
            f"backend {backend})")


def compiler_options(local_devices: int = 1) -> dict | None:
    """``compiler_options`` for ``jax.jit`` of a step on ``local_devices`` of this process
    (None: XLA's defaults; only XLA:CPU gets options)."""
    return cpu.options(local_devices) if jax.default_backend() == "cpu" else None


def start_devices(count: int) -> None:
    """``parallel.cpu_devices``: split a CPU host into ``count`` devices (no-op elsewhere)."""
    cpu.start_cpu_devices(count)
