"""Start a sweep's trials as processes, without paying for a fresh interpreter's imports each.

A trial is ``python -m fcn_jax.main ...``; a fresh interpreter spends about 2.5 s importing
JAX, Flax, orbax and TFDS before the trial starts, most of a quick trial (``--quick``, a few
seconds) and a good part of the test suite. On Linux, ``TrialLauncher`` forks each trial from
a server process (multiprocessing's fork server) that imported ``fcn_jax.main`` once, with
the sweep's environment: every trial is still its own process, in its own session, with its
own JAX backend, devices, signal handlers, log and exit code, as the subprocess would be.
Elsewhere (macOS, where forking a process that loaded system frameworks is unsafe) and for
any other command, a subprocess. What a trial runs (``trial.json``, ``--emit-commands``) is
the same either way.
"""

import atexit
import multiprocessing
import os
import subprocess
import sys
import traceback

TRAIN_MODULE = "fcn_jax.main"


def forking_available() -> bool:
    return sys.platform == "linux" and "forkserver" in multiprocessing.get_all_start_methods()


def run_train_command(args: list[str], log_path: str, cwd: str, env: dict) -> None:
    """In the forked process: what ``python -m fcn_jax.main ARGS`` does in ``cwd`` with
    ``env``, output appended to ``log_path``, in a session of its own (a signal to the sweep's
    terminal does not reach it; the sweep forwards it)."""
    os.setsid()
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    sys.argv = [TRAIN_MODULE, *args]
    from fcn_jax import main
    try:
        main.run()  # exits through SystemExit, whose code is the process's exit code
    finally:
        atexit._run_exitfuncs()  # as an interpreter's exit would (multiprocessing skips them)


def send_result(sender, function, args: tuple) -> None:
    """In the forked process: (True, ``function(*args)``) sent back through ``sender``, or
    (False, the exception in one line) once its traceback is printed here."""
    try:
        result = (True, function(*args))
    except Exception as error:  # pylint: disable=broad-except  (reported to the caller)
        traceback.print_exc()
        result = (False, f"{type(error).__name__}: {error}".splitlines()[0])
    sender.send(result)
    sender.close()


class ForkedTrial:
    """The ``subprocess.Popen`` calls a sweep makes (poll, returncode, send_signal), of a
    trial forked by ``TrialLauncher``; ``returncode`` is negative for a signal, as Popen's."""

    def __init__(self, process: multiprocessing.Process):
        self.process = process
        self.pid = process.pid

    def poll(self) -> int | None:
        return self.process.exitcode

    @property
    def returncode(self) -> int | None:
        return self.process.exitcode

    def send_signal(self, signum: int) -> None:
        if self.process.exitcode is None:
            os.kill(self.pid, signum)


class TrialLauncher:
    """Starts trial commands in ``cwd`` with ``env``: ``python -m fcn_jax.main`` forked from
    the fork server where ``forking_available()`` (``fork=None``) or ``fork=True``, any other
    command and ``fork=False`` as a subprocess. The fork server starts with the first trial,
    with ``env`` (the JAX settings it reads at import, e.g. the compilation cache, are
    ``env``'s), and stops when this process exits: one sweep per process."""

    def __init__(self, cwd: str, env: dict, fork: bool | None = None):
        self.cwd, self.env = cwd, env
        self.context = None
        if forking_available() if fork is None else fork:
            self.context = multiprocessing.get_context("forkserver")
            self.context.set_forkserver_preload([TRAIN_MODULE])

    def start(self, command: list[str], log) -> "ForkedTrial | subprocess.Popen":
        """Start ``command``, its output appended to the open file ``log``."""
        if self.context is None or command[:3] != [sys.executable, "-m", TRAIN_MODULE]:
            return subprocess.Popen(command, cwd=self.cwd, stdout=log, env=self.env,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        log.flush()
        os.environ.update(self.env)  # the fork server, started now, inherits it
        process = self.context.Process(target=run_train_command,
                                       args=(command[3:], log.name, self.cwd, self.env))
        process.start()
        return ForkedTrial(process)

    def call(self, function, *args):
        """``function(*args)``, run where the trials run: in a process forked from the fork
        server (its imports already made, so a check that needs JAX costs no interpreter's
        imports here; the server starts now if no trial started it) where forking is
        available, else in this process. ``function`` must be importable by name and return
        a picklable value; an exception in it is a RuntimeError here."""
        if self.context is None:
            return function(*args)
        os.environ.update(self.env)  # the fork server, started now, inherits it
        receiver, sender = self.context.Pipe(duplex=False)
        process = self.context.Process(target=send_result, args=(sender, function, args))
        process.start()
        sender.close()
        try:
            ok, value = receiver.recv()
        except EOFError:
            ok, value = False, "no result"
        finally:
            receiver.close()
            process.join()
        if not ok:
            raise RuntimeError(f"{function.__name__} failed in a forked process ({value}; exit "
                               f"code {process.exitcode}): see its output above")
        return value
