"""Per-function XLA options for the step functions (passed to ``jax.jit``, never global flags).

XLA:CPU (jax 0.10) hands convolutions, matmuls and, by default, also elementwise ops and
reductions to YNNPACK. An elementwise op inside a YNNPACK fusion gets its broadcast operands
materialised as full arrays (e.g. the loss's one-hot select, the upsampling gradient's tap
arrays: tens of MB each), which costs more than the library gains there. Restricting YNNPACK
to individual convolutions and matmuls leaves the elementwise work to XLA's own fused loops.
Only fusion decisions change; tests/test_compiler.py checks the train step's update is the
same with and without. If the running XLA does not know the option, none is passed.
"""

import functools

import jax
import jax.numpy as jnp

YNN_FUSION_TYPES = ("LIBRARY_FUSION_TYPE_INDIVIDUAL_CONVOLUTION",
                    "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT")
CPU_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": ",".join(YNN_FUSION_TYPES)}


@functools.cache
def cpu_options_supported() -> bool:
    """Whether this XLA accepts ``CPU_OPTIONS`` (probed once with a tiny compile)."""
    try:
        jax.jit(jnp.sin, compiler_options=CPU_OPTIONS).lower(jnp.zeros(2)).compile()
    except Exception:  # an unknown option or enum value is a compile-time error
        return False
    return True


def options() -> dict | None:
    """``compiler_options`` for ``jax.jit`` on this backend (None: XLA's defaults)."""
    if jax.default_backend() == "cpu" and cpu_options_supported():
        return dict(CPU_OPTIONS)
    return None
