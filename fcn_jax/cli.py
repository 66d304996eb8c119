"""What a command prints when it stops on a user's mistake or a request: one line, no traceback.

``guarded(main)`` wraps an absl ``main``: the project's errors for bad input (a config value,
a workdir, a checkpoint, a weight or data file, a diverging run) print ``error: <message>`` on
stderr and exit with ``EXIT_USER_ERROR``; a stop on SIGTERM/SIGINT prints where its checkpoint
is and exits with ``preemption.EXIT_PREEMPTED``. ``FCN_JAX_TRACEBACK=1`` shows the traceback
too. Anything else (a bug) keeps its full traceback.
"""

import os
import sys

from fcn_jax.checkpoint import CheckpointError
from fcn_jax.preemption import EXIT_PREEMPTED, Preempted
from fcn_jax.workdir import WorkdirInUse

EXIT_USER_ERROR = 2
USER_ERRORS = (ValueError, OSError, CheckpointError, WorkdirInUse, FloatingPointError)


def guarded(main):
    """``main`` with the project's user-facing errors reduced to one line and an exit code."""
    def run(argv):
        try:
            return main(argv)
        except Preempted as stop:
            print(str(stop), file=sys.stderr)
            sys.exit(EXIT_PREEMPTED)
        except USER_ERRORS as error:
            if os.environ.get("FCN_JAX_TRACEBACK"):
                raise
            print(f"error: {error}", file=sys.stderr)
            sys.exit(EXIT_USER_ERROR)
    return run
