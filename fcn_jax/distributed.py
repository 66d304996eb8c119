"""Join a multi-process run (several hosts, or several processes on one host).

``--coordinator_address=host:port --num_processes=N --process_id=I`` joins explicitly;
``--coordinator_address=auto`` lets ``jax.distributed`` read the cluster's environment
(SLURM, Open MPI, Cloud TPU); empty (the default) is a single-process run. Must run before
JAX touches a device.
"""

import jax


def initialize(coordinator_address: str, num_processes: int, process_id: int) -> None:
    """Connect this process to the others; a no-op for a single-process run."""
    if not coordinator_address:
        return
    if coordinator_address == "auto":
        jax.distributed.initialize()
        return
    if not 0 <= process_id < num_processes:
        raise ValueError(f"--process_id={process_id} must be in [0, --num_processes="
                         f"{num_processes}); give every process its own id")
    jax.distributed.initialize(coordinator_address, num_processes, process_id)
