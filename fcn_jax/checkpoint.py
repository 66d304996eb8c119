"""A thin layer over orbax's CheckpointManager: save asynchronously, resume the latest.

Checkpoints live in ``<workdir>/checkpoints/<step>``; the manager keeps the newest
``max_to_keep``. Orbax writes each step into a temporary directory and renames it when
complete, so a run killed mid-save resumes from the last complete checkpoint; temporary
directories left by a killed save are removed when the manager opens.

Failures are ``CheckpointError``s that name the directory and what to do: a checkpoint whose
arrays do not match the model (another variant or width), or a save that fails (a full disk).
Neither deletes a complete checkpoint.
"""

import os

import jax
import numpy as np
import orbax.checkpoint as ocp


class CheckpointError(RuntimeError):
    """A checkpoint cannot be restored into this model, or cannot be saved."""


def flat_shapes(tree) -> dict[str, tuple]:
    """{"a/b/c": shape} for every leaf of a pytree (or of orbax's tree metadata)."""
    def name(path):
        return "/".join(str(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k))))
                        for k in path)
    return {name(path): tuple(leaf.shape) if hasattr(leaf, "shape") else np.shape(leaf)
            for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


class Checkpointer:
    """Save and restore the training state pytree of one workdir."""

    def __init__(self, workdir: str, max_to_keep: int = 2):
        self.directory = os.path.join(os.path.abspath(workdir), "checkpoints")
        self.manager = ocp.CheckpointManager(
            self.directory, item_handlers=ocp.StandardCheckpointHandler(),
            options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True,
                                                 cleanup_tmp_directories=True))

    def latest_step(self) -> int | None:
        """The newest complete checkpoint's step, or None."""
        return self.manager.latest_step()

    def save(self, step: int, state) -> None:
        """Start an asynchronous save of ``state`` (host or device arrays) at ``step``."""
        try:
            self.manager.save(step, args=ocp.args.StandardSave(state))
        except OSError as error:
            raise self.save_error(f"the step {step} checkpoint", error) from error

    def save_error(self, what: str, error: OSError) -> CheckpointError:
        """The error for a failed save, naming the last complete checkpoint."""
        return CheckpointError(
            f"saving {what} to {self.directory} failed: {error}. The last "
            f"complete checkpoint (step {self.latest_step()}) is intact; free disk space (or "
            "point --workdir elsewhere after copying it) and run the same command to resume")

    def restore(self, template, step: int | None = None):
        """Restore ``step`` (default: latest) into the structure, shapes and dtypes of template."""
        step = self.latest_step() if step is None else step
        self.check_compatible(template, step)
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, template)
        return self.manager.restore(step, args=ocp.args.StandardRestore(abstract))

    def check_compatible(self, template, step: int) -> None:
        """Raise if the checkpoint's arrays differ in names or shapes from the template's."""
        saved = flat_shapes(self.manager.item_metadata(step).tree)
        wanted = flat_shapes(template)
        def shallow_first(keys):  # parameters before their optimiser moments
            return sorted(keys, key=lambda k: (k.count("/"), k))
        problems = [f"{k}: only in the checkpoint"
                    for k in shallow_first(saved.keys() - wanted.keys())]
        problems += [f"{k}: only in the model"
                     for k in shallow_first(wanted.keys() - saved.keys())]
        problems += [f"{k}: checkpoint {saved[k]} vs model {wanted[k]}"
                     for k in shallow_first(saved.keys() & wanted.keys()) if saved[k] != wanted[k]]
        if problems:
            listed = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more"
                                                 if len(problems) > 5 else "")
            raise CheckpointError(
                f"the step {step} checkpoint in {self.directory} does not fit this model "
                f"({len(problems)} mismatching arrays: {listed}). It was written by another "
                "config (model.variant, model.width, ...): use that config, or a new --workdir "
                "to train this one; nothing was changed")

    def close(self) -> None:
        """Wait for pending saves, then release the manager."""
        try:
            self.manager.wait_until_finished()
        except OSError as error:
            raise self.save_error("a pending checkpoint", error) from error
        finally:
            self.manager.close()
