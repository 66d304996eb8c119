"""A thin layer over orbax's CheckpointManager: save asynchronously, resume the latest.

Checkpoints live in ``<workdir>/checkpoints/<step>``; the manager keeps the newest
``max_to_keep``. Orbax writes each step into a temporary directory and renames it when
complete, so a run killed mid-save resumes from the last complete checkpoint; temporary
directories left by a killed save are removed when the manager opens.

Failures are ``CheckpointError``s that name the directory and what to do: a checkpoint whose
arrays do not match the model (another variant or width), a checkpoint whose files are
damaged (the newest intact one is named), or a save that fails (a full disk: orbax reports it
as a ``ValueError`` with tensorstore's RESOURCE_EXHAUSTED, not as an ``OSError``). None of
them deletes or rewrites a complete checkpoint.
"""

import contextlib
import logging
import os
import sys

import jax
import numpy as np
import orbax.checkpoint as ocp


class CheckpointError(RuntimeError):
    """A checkpoint cannot be restored into this model, or cannot be saved."""


class ModelMismatch(CheckpointError):
    """A checkpoint's arrays differ in names or shapes from the model's: another net's."""


DISK_FULL_SIGNS = ("RESOURCE_EXHAUSTED", "No space left on device", "Disk quota exceeded")


def first_line(error: BaseException, limit: int = 300) -> str:
    """``Type: message`` on one line, without tensorstore's spec dump, cut to ``limit``."""
    text = " ".join(str(error).split()).split(" See full TensorStore")[0]
    text = f"{type(error).__name__}: {text}"
    return text if len(text) <= limit else text[:limit - 3] + "..."


def is_disk_full(error: BaseException) -> bool:
    """An OSError ENOSPC/EDQUOT, or orbax/tensorstore's report of one."""
    if isinstance(error, OSError) and error.errno in (28, 122):
        return True
    return any(sign in str(error) for sign in DISK_FULL_SIGNS)


class OrbaxErrorLogs(logging.Filter):
    """Drop orbax's own ERROR log records (tracebacks of a failed save or restore): each
    failure reaches the user once, as the CheckpointError that names the fix."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.levelno >= logging.ERROR and "orbax" in record.pathname)


def closed_loop_error(kind, value) -> bool:
    """The "Event loop is closed" error tensorstore's callbacks report, one per array write
    still in flight, after orbax gives up on a failed save and closes its event loop."""
    return kind is RuntimeError and str(value) == "Event loop is closed"


def skip_closed_loop_errors(default_hook, error_of):
    """``default_hook`` except for closed-loop errors (``error_of`` maps the hook's
    arguments to (type, value))."""
    def hook(*args):
        if not closed_loop_error(*error_of(*args)):
            default_hook(*args)
    hook.skips_closed_loop_errors = True
    return hook


def quiet_orbax_errors() -> None:
    """Each checkpoint failure reaches the user once, as a CheckpointError: orbax's error
    logs and tensorstore's closed-loop tracebacks are left out."""
    absl_logger = logging.getLogger("absl")
    if not any(isinstance(f, OrbaxErrorLogs) for f in absl_logger.filters):
        absl_logger.addFilter(OrbaxErrorLogs())
    if not getattr(sys.excepthook, "skips_closed_loop_errors", False):
        sys.excepthook = skip_closed_loop_errors(sys.excepthook, lambda k, v, _: (k, v))
    if not getattr(sys.unraisablehook, "skips_closed_loop_errors", False):
        sys.unraisablehook = skip_closed_loop_errors(
            sys.unraisablehook, lambda info: (info.exc_type, info.exc_value))


def flat_shapes(tree) -> dict[str, tuple]:
    """{"a/b/c": shape} for every leaf of a pytree (or of orbax's tree metadata)."""
    def name(path):
        return "/".join(str(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k))))
                        for k in path)
    return {name(path): tuple(leaf.shape) if hasattr(leaf, "shape") else np.shape(leaf)
            for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


class Checkpointer:
    """Save and restore the training state pytree of one workdir."""

    def __init__(self, workdir: str, max_to_keep: int = 2, create: bool = True):
        """``create=False``: a workdir without checkpoints/ is a FileNotFoundError, and
        nothing is created (scoring a mistyped workdir leaves no directories behind)."""
        self.directory = os.path.join(os.path.abspath(workdir), "checkpoints")
        if not create and not os.path.isdir(self.directory):
            raise FileNotFoundError(f"no checkpoints in {os.path.abspath(workdir)} (no "
                                    f"{self.directory} directory): train first, or check "
                                    "--workdir")
        quiet_orbax_errors()
        self.manager = ocp.CheckpointManager(
            self.directory, item_handlers=ocp.StandardCheckpointHandler(),
            options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=create,
                                                 cleanup_tmp_directories=True))

    def latest_step(self) -> int | None:
        """The newest complete checkpoint's step, or None."""
        return self.manager.latest_step()

    def save(self, step: int, state) -> None:
        """Start an asynchronous save of ``state`` (host or device arrays) at ``step``."""
        try:
            self.manager.save(step, args=ocp.args.StandardSave(state))
        except Exception as error:  # orbax reports a full disk as ValueError, not OSError
            raise self.save_error(f"the step {step} checkpoint", error) from error

    def describe_latest(self) -> str:
        step = self.latest_step()
        return (f"The last complete checkpoint (step {step}) is intact" if step is not None
                else "No complete checkpoint was written yet")

    def save_error(self, what: str, error: Exception) -> CheckpointError:
        """The error for a failed save, naming the cause and the last complete checkpoint."""
        if is_disk_full(error):
            return CheckpointError(
                f"saving {what} to {self.directory} failed: the disk is full "
                f"({first_line(error, 160)}). {self.describe_latest()}; free disk space (or "
                "point --workdir elsewhere after copying it) and run the same command to resume")
        return CheckpointError(f"saving {what} to {self.directory} failed: "
                               f"{first_line(error)}. {self.describe_latest()}")

    def restore(self, template, step: int | None = None):
        """Restore ``step`` (default: latest) into the structure, shapes and dtypes of template."""
        step = self.latest_step() if step is None else step
        try:
            return self.read(template, step)
        except CheckpointError:
            raise
        except Exception as error:  # tensorstore, JSON and orbax errors of damaged files
            raise self.unreadable_error(template, step, error) from None

    def read_params(self) -> tuple[dict, int]:
        """The latest checkpoint's parameters as a nested dict of numpy arrays (no template:
        any net's), and its step; a workdir without a checkpoint is a FileNotFoundError."""
        step = self.latest_step()
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {self.directory}")
        return jax.tree.map(np.asarray, self.manager.restore(step)["params"]), step

    def read(self, template, step: int):
        self.check_compatible(template, step)
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, template)
        return self.manager.restore(step, args=ocp.args.StandardRestore(abstract))

    def unreadable_error(self, template, step: int, error: Exception) -> CheckpointError:
        """Name the damaged checkpoint and the newest older one that restores."""
        intact = None
        for older in sorted((s for s in self.manager.all_steps() if s < step), reverse=True):
            try:
                self.read(template, older)
            except Exception:  # damaged too, or of another model: look further back
                continue
            intact = older
            break
        damaged = os.path.join(self.directory, str(step))
        aside = os.path.join(os.path.dirname(self.directory), f"unreadable-checkpoint-{step}")
        advice = (f"checkpoint {intact} is intact: move the damaged one out (mv {damaged} "
                  f"{aside}) and run the same command to resume from step {intact}"
                  if intact is not None else
                  f"no older checkpoint is intact: move it out (mv {damaged} {aside}) to start "
                  "from the beginning, or pass another --workdir")
        return CheckpointError(f"checkpoint {step} in {self.directory} is unreadable "
                               f"({first_line(error)}); {advice}. Nothing was changed")

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
            raise ModelMismatch(
                f"the step {step} checkpoint in {self.directory} does not fit this model "
                f"({len(problems)} mismatching arrays: {listed}). It was written by another "
                "config (model.variant, model.width, ...): use that config, or a new --workdir "
                "to train this one; nothing was changed")

    def close(self) -> None:
        """Wait for pending saves, then release the manager."""
        try:
            self.manager.wait_until_finished()
        except Exception as error:  # a full disk surfaces here, from the async save
            with contextlib.suppress(Exception):  # closing repeats the save's error
                self.manager.close()
            raise self.save_error("a pending checkpoint", error) from error
        self.manager.close()
