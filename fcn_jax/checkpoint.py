"""A thin layer over orbax's CheckpointManager: save asynchronously, resume the latest.

Checkpoints live in ``<workdir>/checkpoints/<step>``; the manager keeps the newest
``max_to_keep``. Orbax writes each step into a temporary directory and renames it when
complete, so a run killed mid-save resumes from the last complete checkpoint.
"""

import os

import jax
import orbax.checkpoint as ocp


class Checkpointer:
    """Save and restore the training state pytree of one workdir."""

    def __init__(self, workdir: str, max_to_keep: int = 2):
        self.directory = os.path.join(os.path.abspath(workdir), "checkpoints")
        self.manager = ocp.CheckpointManager(
            self.directory, options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep,
                                                                 create=True))

    def latest_step(self) -> int | None:
        """The newest complete checkpoint's step, or None."""
        return self.manager.latest_step()

    def save(self, step: int, state) -> None:
        """Start an asynchronous save of ``state`` (host or device arrays) at ``step``."""
        self.manager.save(step, args=ocp.args.StandardSave(state))

    def restore(self, template, step: int | None = None):
        """Restore ``step`` (default: latest) into the structure, shapes and dtypes of template."""
        step = self.latest_step() if step is None else step
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, template)
        return self.manager.restore(step, args=ocp.args.StandardRestore(abstract))

    def close(self) -> None:
        """Wait for pending saves, then release the manager."""
        self.manager.wait_until_finished()
        self.manager.close()
