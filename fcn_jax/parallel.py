"""Data parallelism: one step body, wrapped by ``jax.pmap`` or by ``jax.jit`` over a mesh.

``mode="pmap"``: state replicated on a leading device axis, batch reshaped to
[devices, per-device batch, ...], collectives over axis "data".
``mode="mesh"``: a 1-D ``Mesh`` over the devices with axis "data"; state replicated
(``PartitionSpec()``), batch sharded on its first axis (``PartitionSpec("data")``).
Multi-host: each process feeds its local slice of the global batch; see ``put_batch``.

On a CPU host, ``backends.start_devices`` splits the host into several XLA devices before JAX
starts, so the same data parallelism runs one batch slice per device (in mesh mode
``backends.compiler_options`` then gives each device one-threaded YNNPACK convolutions, which
the devices run side by side).
"""

import functools

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from fcn_jax import backends

AXIS = "data"
MODES = ("pmap", "mesh")
class DataParallel:
    """Places state and batches on devices and wraps step bodies for one parallel mode."""

    def __init__(self, mode: str = "mesh", num_devices: int = 0):
        if mode not in MODES:
            raise ValueError(f"parallel.mode={mode!r}: expected one of {MODES}")
        self.mode = mode
        if mode == "pmap":
            local = jax.local_devices()
            if num_devices > len(local):
                raise ValueError(f"parallel.num_devices={num_devices} but only {len(local)} "
                                 "local devices exist")
            self.devices = local[:num_devices] if num_devices else local
            self.stacked = NamedSharding(Mesh(np.asarray(self.devices), (AXIS,)),
                                         PartitionSpec(AXIS))
            # pmap's collectives span the devices it is given: with several processes that
            # must be every process's share, or each process averages only its own gradients.
            by_process = [[d for d in jax.devices() if d.process_index == p]
                          for p in range(jax.process_count())]
            self.pmap_devices = [d for devices in by_process for d in devices[:len(self.devices)]]
        else:
            every = jax.devices()
            if num_devices > len(every):
                raise ValueError(f"parallel.num_devices={num_devices} but only {len(every)} "
                                 "devices exist")
            self.devices = every[:num_devices] if num_devices else every
            self.mesh = Mesh(np.asarray(self.devices), (AXIS,))
            self.replicated = NamedSharding(self.mesh, PartitionSpec())
            self.sharded = NamedSharding(self.mesh, PartitionSpec(AXIS))

    @property
    def num_devices(self) -> int:
        """Devices taking part in the step (all processes' for mesh, local for pmap)."""
        return len(self.devices)

    def check_batch_size(self, global_batch: int, name: str = "train.batch_size") -> int:
        """Per-process batch size; a batch that does not split evenly is an error."""
        total = self.num_devices * (jax.process_count() if self.mode == "pmap" else 1)
        if global_batch % total:
            raise ValueError(f"{name}={global_batch} does not divide over {total} devices; "
                             f"use a multiple of {total}")
        return global_batch // jax.process_count()

    def put_replicated(self, tree):
        """Copy a host pytree to every device."""
        if self.mode == "pmap":
            n = len(self.devices)
            return jax.device_put(jax.tree.map(lambda x: np.stack([np.asarray(x)] * n), tree),
                                  self.stacked)
        return jax.device_put(tree, self.replicated)

    def get_replicated(self, tree):
        """Bring a replicated device pytree back to the host as numpy (one copy).

        Reads the shard on the first local device without dispatching any computation (with
        several processes the array spans devices of other hosts). Under pmap that shard is
        the [1, ...] slice of the stacked per-device axis.
        """
        def to_host(x):
            if not isinstance(x, jax.Array):
                return x
            local = np.asarray(x.addressable_data(0))
            return local[0] if self.mode == "pmap" else local

        return jax.tree.map(to_host, tree)

    def put_batch(self, batch: dict):
        """Shard this process's slice of the global batch over the devices."""
        if self.mode == "pmap":
            n = len(self.devices)
            return jax.device_put(
                jax.tree.map(lambda x: x.reshape(n, -1, *x.shape[1:]), batch), self.stacked)
        return jax.tree.map(
            lambda x: jax.make_array_from_process_local_data(self.sharded, x), batch)

    def wrap(self, body, *, num_args: int, donate: tuple = ()):
        """Compile ``body(replicated, batch, replicated...)``: argument 1 is the batch.

        ``body`` takes ``axis_name``; pmap passes "data", mesh passes None.
        """
        if self.mode == "pmap":
            return jax.pmap(functools.partial(body, axis_name=AXIS), axis_name=AXIS,
                            devices=self.pmap_devices, donate_argnums=donate)
        shardings = tuple(self.sharded if i == 1 else self.replicated for i in range(num_args))
        return jax.jit(functools.partial(body, axis_name=None), in_shardings=shardings,
                       out_shardings=self.replicated, donate_argnums=donate,
                       compiler_options=backends.compiler_options(self.local_device_count))

    @property
    def local_device_count(self) -> int:
        """Devices of this process taking part in the step."""
        return sum(d.process_index == jax.process_index() for d in self.devices)
