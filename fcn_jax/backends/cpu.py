"""What runs differently on the CPU backend: XLA options, the device split, the fast kernels.

Nothing here changes a value; tests/test_fast_paths.py and tests/test_compiler.py check the
model's outputs, gradients and the train step's update are the same with and without.

**Per-function XLA options** for the step functions (passed to ``jax.jit``, never global
flags). XLA:CPU (jax 0.10) hands convolutions, matmuls and, by default, also elementwise ops and
reductions to YNNPACK. Two of those choices cost more than they gain for the FCN:
- An elementwise op inside a YNNPACK fusion gets its broadcast operands materialised as full
  arrays (e.g. the loss's one-hot select, the upsampling gradient's tap arrays: tens of MB).
- YNNPACK runs a convolution on one thread unless its output is small (measured on 2 cores:
  the VGG 3x3 convolutions at 112x112 and 56x56, 32 and 64 channels, reach one core's peak
  while XLA's Eigen convolutions use both cores and are up to 1.7x faster).
So YNNPACK is kept for matrix products only (fc6, fc7, the sub-pixel upsampling), where it
is parallel; convolutions go to Eigen and elementwise work to XLA's own fused loops.
A step sharded over several CPU devices (``start_cpu_devices``, e.g. one per core;
``DataParallel.wrap`` in mesh mode passes the count) is the exception: each device runs its
program on its own thread, so one-threaded convolutions run side by side, and there
YNNPACK's are the faster (measured on 2 cores, 2 devices: the 112x112 32-channel
convolution 5.7 -> 4.8 ms, 56x56 64-channel 4.7 -> 4.2 ms against Eigen's on one device).
Where the running XLA does not know an option value, the one-device set or none is passed.

**The device split**: ``start_cpu_devices`` splits the host into several XLA devices before
JAX starts, so data parallelism runs one batch slice per device.

**The fast kernels** (``FAST_KERNELS``, chosen by ``backends.kernels`` for
``model.fast_paths=auto`` on this backend only): each is a formulation XLA:CPU runs faster
than the plain one, measured in docs/performance.md; on a GPU or TPU their gathered patches
and hand-written gradients would cost memory for nothing.
- convolutions by the operands' shapes (``fast_conv_form``): 3-channel inputs as a
  column-grouped banded matmul, 1x1 and larger-than-3x3 kernels (fc6, fc7, score layers) as
  im2col matmuls, the rest lax's convolution;
- 2x2 ceil-mode max pooling as four strided slices with a scatter-free gradient;
- fixed (per-class bilinear) upsampling as per-channel sub-pixel phases, learned upsampling as
  one sub-pixel matmul;
- per-pixel labels as max-then-first-index instead of argmax's paired reduction.
"""

import functools
import operator
import os

import jax
import jax.numpy as jnp
from jax import lax

from fcn_jax.backends.kernels import Kernels
from fcn_jax.ops import argmax, conv, pool
from fcn_jax.ops import upsample as up

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
    """``compiler_options`` for ``jax.jit`` on XLA:CPU (None: XLA's defaults), for a
    function that runs on ``local_devices`` of this process at once. Falls back to the
    one-device set, then to none, where this XLA does not know an option value."""
    candidates = (SHARDED_CPU_OPTIONS, CPU_OPTIONS) if local_devices > 1 else (CPU_OPTIONS,)
    return next((dict(c) for c in candidates if supported(c[YNN_OPTION])), None)


CPU_DEVICE_COUNT_VARIABLE = "JAX_NUM_CPU_DEVICES"
CPU_DEVICE_COUNT_XLA_FLAG = "--xla_force_host_platform_device_count"


def cpu_devices_set_by_environment(environ=os.environ) -> bool:
    """Whether JAX_NUM_CPU_DEVICES or the host device count in XLA_FLAGS fix the count."""
    return (bool(environ.get(CPU_DEVICE_COUNT_VARIABLE))
            or CPU_DEVICE_COUNT_XLA_FLAG in environ.get("XLA_FLAGS", ""))


def is_count(value) -> bool:
    """Whether ``value`` is an integer >= 1 (numpy integers too; not a bool)."""
    try:
        return not isinstance(value, bool) and operator.index(value) >= 1
    except TypeError:
        return False


def start_cpu_devices(count: int) -> None:
    """Split the host CPU into ``count`` XLA devices (``parallel.cpu_devices``, applied by
    ``fcn_jax.main``); call before any JAX computation.

    Only the CPU backend is affected (on a GPU or TPU host the mesh uses the accelerators).
    Where the environment variables set the count (JAX_NUM_CPU_DEVICES, or XLA_FLAGS as the
    tests' fake devices do), they win and nothing is changed; 1 is JAX's own default.
    """
    if not is_count(count):
        raise ValueError(f"parallel.cpu_devices={count!r}: expected a device count >= 1")
    if count > 1 and not cpu_devices_set_by_environment():
        jax.config.update("jax_num_cpu_devices", operator.index(count))


FEW_INPUT_CHANNELS = 4  # at most this many (RGB's 3): too few for XLA's convolution kernels


def fast_conv_form(lhs, rhs, padding, precision, preferred_element_type):
    """A stride-1 NHWC/HWIO convolution in the form XLA:CPU runs fastest for its shapes."""
    kh, kw, in_channels, _ = rhs.shape
    if in_channels <= FEW_INPUT_CHANNELS:
        return conv.column_group_plain(lhs, rhs, padding, precision, preferred_element_type)
    if kh * kw == 1 or min(kh, kw) > 3:
        return conv.im2col_matmul(lhs, rhs, padding, precision, preferred_element_type)
    return lax.conv_general_dilated(lhs, rhs, (1, 1), padding, dimension_numbers=conv.NHWC,
                                    precision=precision,
                                    preferred_element_type=preferred_element_type)


FAST_KERNELS = Kernels(
    name="cpu-fast",
    conv=conv.lax_drop_in(fast_conv_form),
    max_pool=pool.max_pool_2x2,
    transposed_conv=up.transposed_conv,
    per_class_transposed_conv=up.per_class_transposed_conv,
    class_predictions=argmax.first_max_index,
)
