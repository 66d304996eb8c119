"""Per-function XLA options for the step functions (passed to ``jax.jit``, never global flags).

XLA:CPU (jax 0.10) hands convolutions, matmuls and, by default, also elementwise ops and
reductions to YNNPACK. Two of those choices cost more than they gain for the FCN:
- An elementwise op inside a YNNPACK fusion gets its broadcast operands materialised as full
  arrays (e.g. the loss's one-hot select, the upsampling gradient's tap arrays: tens of MB).
- YNNPACK runs a convolution on one thread unless its output is small (measured on 2 cores:
  the VGG 3x3 convolutions at 112x112 and 56x56, 32 and 64 channels, reach one core's peak
  while XLA's Eigen convolutions use both cores and are up to 1.7x faster).
So YNNPACK is kept for matrix products only (fc6, fc7, the sub-pixel upsampling), where it
is parallel; convolutions go to Eigen and elementwise work to XLA's own fused loops.
A step sharded over several CPU devices (``parallel.start_cpu_devices``, e.g. one per core;
``DataParallel.wrap`` in mesh mode passes the count) is the exception: each device runs its
program on its own thread, so one-threaded convolutions run side by side, and there
YNNPACK's are the faster (measured on 2 cores, 2 devices: the 112x112 32-channel
convolution 5.7 -> 4.8 ms, 56x56 64-channel 4.7 -> 4.2 ms against Eigen's on one device).
Only backend choices change; tests/test_compiler.py checks the train step's update is the
same with and without. Where the running XLA does not know an option value, the one-device
set or none is passed.
"""

import functools

import jax
import jax.numpy as jnp

YNN_OPTION = "xla_cpu_experimental_ynn_fusion_type"
YNN_DOT = "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT"
YNN_CONVOLUTION = "LIBRARY_FUSION_TYPE_INDIVIDUAL_CONVOLUTION"
CPU_OPTIONS = {YNN_OPTION: YNN_DOT}
SHARDED_CPU_OPTIONS = {YNN_OPTION: f"{YNN_DOT},{YNN_CONVOLUTION}"}


@functools.cache
def supported(ynn_fusion_types: str) -> bool:
    """Whether this XLA accepts that YNNPACK option value (probed once with a tiny compile)."""
    try:
        jax.jit(jnp.sin, compiler_options={YNN_OPTION: ynn_fusion_types}).lower(
            jnp.zeros(2)).compile()
    except Exception:  # an unknown option or enum value is a compile-time error
        return False
    return True


def options(local_devices: int = 1) -> dict | None:
    """``compiler_options`` for ``jax.jit`` on this backend (None: XLA's defaults), for a
    function that runs on ``local_devices`` of this process at once. Falls back to the
    one-device set, then to none, where this XLA does not know an option value."""
    if jax.default_backend() != "cpu":
        return None
    candidates = (SHARDED_CPU_OPTIONS, CPU_OPTIONS) if local_devices > 1 else (CPU_OPTIONS,)
    return next((dict(c) for c in candidates if supported(c[YNN_OPTION])), None)
