"""Run a named config sweep, one ``fcn_jax.main`` process per trial, resumably.

    python -m experiments.sweep --config configs/default.py --sweep lr_decoder \\
        --workdir workdirs/lr_decoder [--parallel 2] [--config.train.num_steps=500]

Each trial trains in ``WORKDIR/<trial name>`` (its ``config.json`` is the resolved config,
``log.txt`` its output), started by ``experiments.launcher`` (on Linux forked from a process
that imported ``fcn_jax.main`` once). A trial with ``results.json`` is finished and skipped;
any other is (re)started and resumes from its checkpoints. A failing trial does not stop the
others; the command exits non-zero if any failed. A rerun with other common overrides (or a
trial whose overrides changed) is refused, naming them. SIGTERM/SIGINT is forwarded to the
running trials, which save a checkpoint and stop; no new trial starts, and the command exits
with 75.
A staged trial (``sweeps.stages``) starts once its parent finished, from the parent's workdir
(``model.init_from``); when the parent fails (or is interrupted), it is not started. A longer
run (``sweeps.lengthened``) waits the same way for the run it continues
(``train.continue_from``).
``--emit-commands FILE`` writes one shell command per unfinished trial that can start now
instead of running them (e.g. for a SLURM job array); staged trials follow in a later emit,
once their parents finished.
A trial that starts from a file (``model.init_from``, e.g. the pretrained classifier) that does
not exist stops the sweep before any trial runs (``--emit-commands`` warns and writes them),
as does one whose file does not fit its model (names, shapes, input convention, fixed
layers; as the trial's import checks it, once per file and model).
``--quick`` runs the study's quick form (the config file's ``quick_trial``): the first seeds,
each trial seconds long on the smoke config, starting from quick forms of its files (e.g. a
seconds-long classifier) made first inside WORKDIR, ``--parallel`` at a time; a way to try a
study end to end before its hours. A workdir holds one form; the other is refused.
Trials share one persistent XLA compilation cache, ``WORKDIR/jax_cache`` (unless
``JAX_COMPILATION_CACHE_DIR`` names another), and the first trial of every program runs
before the second of any: trials that differ only in seed or learning rate (inputs of the
compiled programs, not constants in them) run the programs the first one compiled.
Each launch of a trial appends a line to its ``launches.jsonl``: the code it ran
(``git describe --always --dirty`` of this checkout), ``--parallel``, the time and its start
file's sha256, which the report summarises (a study's digits are those of the code it ran on).
``--reuse-from DIR`` copies each trial that a finished trial of another sweep (in DIR) already
ran, the same resolved config from a start file of the same contents, instead of training it
again (``experiments/reuse.py``); the copy keeps the launches of the code it ran.
"""

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import time

from experiments import reuse
from experiments.launcher import TrialLauncher
from fcn_jax import config_checks, config_cli, sweeps
from fcn_jax.preemption import EXIT_PREEMPTED, SIGNALS
from fcn_jax.workdir import write_json

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
POLL_SECONDS = 0.5
# Config keys that are inputs of a run's compiled programs, not constants in them (the model's
# initialisation takes the seed, the train step the learning rate): trials differing only in
# these share every program.
PROGRAM_INPUTS = ("seed", "optim.learning_rate")
# The compilation cache the trials share: entries are keyed by program, compile options,
# devices and jax version, so a hit is the executable compiling would give. A size limit
# turns on the cache's file lock, which trials running at once need.
CACHE_ENVIRONMENT = {"JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0.2",
                     "JAX_COMPILATION_CACHE_MAX_SIZE": str(8 << 30)}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, help="config file, e.g. configs/default.py")
    parser.add_argument("--sweep", required=True, help="name of a sweep in the file's SWEEPS")
    parser.add_argument("--workdir", required=True, help="directory holding one dir per trial")
    parser.add_argument("--parallel", type=int, default=1, help="trials run at once")
    parser.add_argument("--emit-commands", metavar="FILE",
                        help="write one command per unfinished trial to FILE; run nothing")
    parser.add_argument("--reuse-from", metavar="DIR", action="append", default=[],
                        help="copy each trial that a finished trial of another sweep in DIR (a "
                        "sweep directory, or a directory of them) already ran, same resolved "
                        "config and start file, instead of training it again")
    parser.add_argument("--quick", action="store_true",
                        help="the study's quick form: its trials on the smoke config, seconds "
                        "each (the config file's quick_trial), to try it end to end")
    args, rest = parser.parse_known_args(argv)
    try:
        unknown, args.common_texts = config_cli.split_overrides(rest)
    except ValueError as error:
        parser.error(str(error))
    if unknown:
        parser.error(f"unrecognised argument {unknown[0]!r} (expected --config.a.b=value)")
    if args.parallel < 1:
        parser.error("--parallel must be at least 1")
    return args


def trial_command(config_arg: str, workdir: str, overrides: dict) -> list[str]:
    """The ``fcn_jax.main`` command line that trains one trial."""
    command = [sys.executable, "-m", "fcn_jax.main", "--config", config_arg, "--workdir", workdir]
    return command + [f"--config.{k}={sweeps.format_value(v)}" for k, v in overrides.items()]


def prepare(args: argparse.Namespace) -> list[dict]:
    """Validate the sweep, write ``sweep.json`` and each trial's ``trial.json``; the trials.
    With ``--quick``, each trial's command runs its quick form (``args.quick_inputs`` are
    then the files it starts from and their commands)."""
    path, arg = sweeps.split_config_arg(args.config)
    config_arg = os.path.abspath(path) + (f":{arg}" if arg is not None else "")
    workdir = os.path.abspath(args.workdir)
    base, trials, study = sweeps.load_sweep(args.config, args.sweep)
    args.common = config_cli.typed_overrides(base, args.common_texts)
    named, args.quick_inputs, args.resolved = sweeps.name_trials(trials), {}, {}
    configs = {name: {**args.common, **sweeps.config_overrides(o)} for name, o in named}
    if args.quick:
        quick_trial, args.quick_inputs = sweeps.load_quick(args.config, workdir)
        configs = {name: quick_trial(config) for name, config in configs.items()}
        named = [(name, overrides) for name, overrides in named if configs[name] is not None]
    for name, _ in named:
        trial_config = base.copy_and_resolve_references()
        sweeps.apply_overrides(trial_config, configs[name])
        config_checks.validate(trial_config)
    manifest_path = os.path.join(workdir, "sweep.json")
    if os.path.exists(manifest_path):
        with open(manifest_path, encoding="utf-8") as f:
            old = json.load(f)
        if (old["config"], old["sweep"]) != (config_arg, args.sweep):
            raise SystemExit(f"{workdir} holds sweep {old['sweep']!r} of {old['config']}, not "
                             f"{args.sweep!r} of {config_arg}; choose another --workdir")
        if old.get("quick", False) != args.quick:
            forms = ("full", "quick") if args.quick else ("quick", "full")
            raise ValueError(f"{workdir} holds the {forms[0]} form of sweep {args.sweep!r}, not "
                             f"its {forms[1]} form; choose another --workdir")
        check_unchanged(workdir, old, args.common, named)
    links = sweeps.parent_links(named)
    quick_files = {full: quick for full, (quick, _) in args.quick_inputs.items()}
    records = []
    for name, overrides in named:
        trial_dir = os.path.join(workdir, name)
        config = {k: quick_files.get(v, v) if isinstance(v, str) else v
                  for k, v in configs[name].items()}
        for key, parent in links.get(name, {}).items():
            config[key] = os.path.join(workdir, parent)
        parent = sweeps.wait_for(links[name]) if name in links else None
        records.append({"name": name, "overrides": overrides, "parent": parent,
                        "init_from": config.get(sweeps.INIT_KEY, ""), "workdir": trial_dir,
                        "command": trial_command(config_arg, trial_dir, config)})
        resolved = base.copy_and_resolve_references()
        sweeps.apply_overrides(resolved, config)
        args.resolved[name] = json.loads(resolved.to_json())
    os.makedirs(workdir, exist_ok=True)
    write_json(manifest_path, {"config": config_arg, "sweep": args.sweep, "quick": args.quick,
                               "common_overrides": args.common,
                               "swept_keys": sweeps.swept_keys(trials), "study": study,
                               "trials": [{"name": r["name"], "overrides": r["overrides"],
                                           "parent": r["parent"]} for r in records]})
    for record in records:
        os.makedirs(record["workdir"], exist_ok=True)
        write_json(os.path.join(record["workdir"], "trial.json"), record)
    return records


def make_quick_inputs(records: list[dict], quick_inputs: dict, parallel: int) -> None:
    """Write each quick input file an unfinished trial starts from and that does not exist yet
    (e.g. the seconds-long classifier), ``parallel`` at a time, each command's output in
    ``<file's dir>.log``; the first failure stops the sweep once its group has ended."""
    needed = {r["init_from"] for r in records if r["parent"] is None and not is_finished(r)}
    missing = [(path, command) for path, command in quick_inputs.values()
               if path in needed and not os.path.exists(path)]
    for first in range(0, len(missing), parallel):
        started = [start_quick_input(path, command)
                   for path, command in missing[first:first + parallel]]
        failures = [failure for failure in map(finish_quick_input, started) if failure]
        if failures:
            raise InputFailed(failures[0])


def start_quick_input(path: str, command: list[str]) -> tuple:
    directory = os.path.dirname(path)
    print(f"making {path} ({shlex.join(command)})", flush=True)
    os.makedirs(os.path.dirname(directory), exist_ok=True)
    log = open(directory + ".log", "a", encoding="utf-8")
    proc = subprocess.Popen([sys.executable, *command], cwd=ROOT, stdout=log,
                            stderr=subprocess.STDOUT)
    return path, command, log, proc


def finish_quick_input(started: tuple) -> str | None:
    """Wait for a quick input's command; what went wrong, or None."""
    path, command, log, proc = started
    proc.wait()
    log.close()
    if proc.returncode != 0 or not os.path.exists(path):
        return (f"{shlex.join(command)} failed (exit code {proc.returncode}), "
                f"see {os.path.dirname(path)}.log; no trial started")
    return None


# The make targets that write the classifiers the studies start from, by file name.
CLASSIFIER_TARGETS = (("vgg16_classifier.npz", "classifier"),
                      ("alexnet_classifier.npz", "backbone-classifiers"),
                      ("googlenet_classifier.npz", "backbone-classifiers"))


class InputFailed(RuntimeError):
    """A command that writes a quick input file failed."""


def check_unchanged(workdir: str, old: dict, common: dict, named: list) -> None:
    """Refuse a rerun whose overrides differ from those the workdir's trials ran with: its
    finished trials would be skipped while their records claimed the new values."""
    before, now = sweeps.as_json(old["common_overrides"]), sweeps.as_json(common)
    changed = [f"--config.{k}: was {before.get(k, '(not set)')!r}, now {now.get(k, '(not set)')!r}"
               for k in sorted(before.keys() | now.keys()) if before.get(k) != now.get(k)]
    old_trials = {t["name"]: sweeps.as_json(t["overrides"]) for t in old["trials"]}
    changed += [f"trial {name}: was {old_trials[name]}, now {sweeps.as_json(overrides)}"
                for name, overrides in named
                if name in old_trials and old_trials[name] != sweeps.as_json(overrides)]
    if changed:
        raise ValueError(f"{workdir} holds trials run with other overrides ("
                         + "; ".join(changed) + "): rerun with the same ones, or choose "
                         "another --workdir")


def check_init_files(records: list[dict], missing_is_error: bool) -> None:
    """Every unfinished trial that starts from a file or workdir (not its parent's) finds it,
    relative to the repository root where trials run; else an error, or a warning (emitted
    commands may run once it exists)."""
    for record in records:
        path = record["init_from"]
        if (record["parent"] is None and path and not is_finished(record)
                and not os.path.exists(os.path.join(ROOT, path))):
            hint = next((f" (make {target} writes it)" for suffix, target in CLASSIFIER_TARGETS
                         if path.endswith(suffix)), "")
            problem = (f"trial {record['name']}: {sweeps.INIT_KEY}={path!r} does not exist{hint}; "
                       f"relative paths are from {ROOT}")
            if missing_is_error:
                raise FileNotFoundError(problem)
            print(f"warning: {problem}", file=sys.stderr)
            return


def start_file_misfits(checks: list[tuple[dict, str]]) -> list[str | None]:
    """``pretrained.misfit`` of each (model config, file) on the CPU (shapes and a small model
    only: no accelerator is taken), imported where it runs, in the fork server's child, which
    imported JAX already; the sweep's own process never needs it."""
    import jax  # pylint: disable=import-outside-toplevel
    from fcn_jax.models import pretrained  # pylint: disable=import-outside-toplevel
    jax.config.update("jax_platforms", "cpu")
    return [pretrained.misfit(model, path) for model, path in checks]


def start_files_to_check(records: list[dict], resolved: dict) -> list[tuple[dict, str, dict]]:
    """(record, start file, model config) of each distinct file and model that an unfinished
    trial loads: not a parent's workdir (staged trials, longer runs), and not for a trial
    that resumes from its own checkpoints or continues another run (``train.continue_from``),
    which loads no start file."""
    found, seen = [], set()
    for record in records:
        path = os.path.join(ROOT, record["init_from"]) if record["init_from"] else ""
        if (record["parent"] is not None or not os.path.isfile(path) or is_finished(record)
                or has_checkpoint(record["workdir"])
                or resolved[record["name"]]["train"]["continue_from"]):
            continue
        model = resolved[record["name"]]["model"]
        key = (path, json.dumps(model, sort_keys=True))
        if key not in seen:
            seen.add(key)
            found.append((record, path, model))
    return found


def check_start_files(records: list[dict], workdir: str, resolved: dict) -> None:
    """Every start file an unfinished trial loads fits that trial's model, as the trial's
    import checks it (names, shapes, input convention, fixed layers), each file and model
    once, before any trial runs; else an error naming the trial and the file."""
    checks = start_files_to_check(records, resolved)
    if not checks:
        return
    launcher = TrialLauncher(ROOT, trial_environment(workdir))
    problems = launcher.call(start_file_misfits, [(model, path) for _, path, model in checks])
    for (record, _, _), problem in zip(checks, problems):
        if problem:
            raise ValueError(f"trial {record['name']}: {sweeps.INIT_KEY}="
                             f"{record['init_from']!r} does not fit its model: {problem}; give "
                             "it a file of its model's trunk, or model settings that fit the "
                             "file; no trial started")


def has_checkpoint(workdir: str) -> bool:
    """Whether a trial's workdir holds a saved step (orbax names each by its number): the
    trial resumes from it."""
    directory = os.path.join(workdir, "checkpoints")
    return os.path.isdir(directory) and any(name.isdigit() for name in os.listdir(directory))


def is_finished(record: dict) -> bool:
    return os.path.exists(os.path.join(record["workdir"], "results.json"))


def shell_command(record: dict) -> str:
    """One self-contained shell line: run the trial from the repository, log to its dir."""
    log = os.path.join(record["workdir"], "log.txt")
    return (f"cd {shlex.quote(ROOT)} && {shlex.join(record['command'])} "
            f">> {shlex.quote(log)} 2>&1")


def emit_commands(records: list[dict], path: str) -> None:
    """Write the ready trials' shell lines; emit again only once those tasks have ended (a
    trial still running would be started twice)."""
    check_init_files(records, missing_is_error=False)
    finished = {r["name"] for r in records if is_finished(r)}
    pending = [r for r in records if r["name"] not in finished]
    ready = [r for r in pending if r["parent"] is None or r["parent"] in finished]
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(shell_command(r) + "\n" for r in ready)
    waiting = len(pending) - len(ready)
    print(f"wrote {len(ready)} commands to {path} ({len(finished)} finished trials left out"
          + (f"; {waiting} staged trials wait for their parent: emit again once these finish"
             if waiting else "") + ")")


class Progress:
    """One status line: done / running / failed / pending, and an ETA from finished trials."""

    def __init__(self, total: int, parallel: int):
        self.total, self.parallel = total, parallel
        self.durations: list[float] = []
        self.last = ""
        self.tty = sys.stderr.isatty()

    def show(self, done: int, running: int, failed: int) -> None:
        pending = self.total - done - running - failed
        line = f"[sweep] {done}/{self.total} done, {running} running, {failed} failed"
        if self.durations and (pending or running):
            mean = sum(self.durations) / len(self.durations)
            slots = min(self.parallel, pending + running)
            line += f", ETA {format_seconds(mean * (pending + running) / slots)}"
        if line == self.last and not self.tty:
            return
        self.last = line
        sys.stderr.write(("\r" + line.ljust(72)) if self.tty else line + "\n")
        sys.stderr.flush()

    def close(self) -> None:
        if self.tty:
            sys.stderr.write("\n")


def format_seconds(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


class SignalForwarder:
    """While entered, SIGTERM and SIGINT reach every running trial (each in its own session,
    so a terminal's Ctrl-C reaches it only through here, once): a trial saves a checkpoint
    and stops (exit code EXIT_PREEMPTED); a second signal stops it at once. No new trial
    starts after a signal."""

    def __init__(self, running: dict):
        self.running = running
        self.received: list[str] = []
        self.previous: dict = {}

    def handle(self, signum, _frame) -> None:
        self.received.append(signal.Signals(signum).name)
        for proc, *_ in self.running.values():
            proc.send_signal(signum)

    def __enter__(self) -> "SignalForwarder":
        self.previous = {s: signal.signal(s, self.handle) for s in SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)


def trial_status(returncode: int, record: dict, log_name: str) -> str:
    if returncode == 0 and is_finished(record):
        return "finished"
    if returncode == EXIT_PREEMPTED:
        return "interrupted (checkpoint saved; run the same sweep command to resume)"
    return f"failed (exit code {returncode}), see {log_name}"


def next_ready(queue: list[dict], status: dict, compiling: set = frozenset()) -> dict | None:
    """The first queued trial whose parent (if any) has finished, removed from the queue;
    one whose program is not in ``compiling`` (being compiled by a running trial) if any is
    ready, so that it loads the program once compiled rather than compile it alongside."""
    ready = [r for r in queue if r["parent"] is None
             or status.get(r["parent"], "").startswith(("finished", "skipped", "reused"))]
    record = next((r for r in ready if program_of(r) not in compiling), ready[0] if ready else None)
    if record is not None:
        queue.remove(record)
    return record


def block_orphans(queue: list[dict], status: dict) -> None:
    """Trials whose parent failed, was interrupted or was not started: never started, said
    so (an interrupted chain resumes with the same command; a failed one needs a fix first)."""
    blocked = True
    while blocked:
        blocked = [r for r in queue if status.get(r["parent"], "").startswith(
            ("failed", "not started", "interrupted"))]
        for record in blocked:
            queue.remove(record)
            parent = status[record["parent"]]
            why = ("was interrupted" if "interrupted" in parent or "received" in parent
                   else "did not finish")
            status[record["name"]] = f"not started (its parent {record['parent']} {why})"


def trial_environment(workdir: str) -> dict:
    """The trials' environment: this one, with the sweep's compilation cache unless it names
    its own."""
    if "JAX_COMPILATION_CACHE_DIR" in os.environ:
        return dict(os.environ)
    return {**CACHE_ENVIRONMENT, **os.environ,
            "JAX_COMPILATION_CACHE_DIR": os.path.join(workdir, "jax_cache")}


def code_version() -> str:
    """This checkout's commit as ``git describe --always --dirty`` names it ("-dirty": with
    uncommitted changes), or "unknown" outside a git checkout or without git."""
    try:
        proc = subprocess.run(["git", "-C", ROOT, "describe", "--always", "--dirty",
                               "--abbrev=12"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return proc.stdout.strip() if proc.returncode == 0 else "unknown"


def is_staged(record: dict) -> bool:
    """Whether a trial starts from a parent's workdir in its own sweep (a staged trial, or
    a longer run of one)."""
    return os.path.dirname(record["init_from"]) == os.path.dirname(record["workdir"])


def start_digest(record: dict) -> str | None:
    """What a trial starts from, for ``--reuse-from``: its start file's sha256 (None: no
    file); a staged trial's parent workdir is no file."""
    if is_staged(record):
        return "a parent's workdir"
    path = os.path.join(ROOT, record["init_from"]) if record["init_from"] else ""
    return reuse.file_digest(path) if not path or os.path.isfile(path) else "no such file"


def record_launch(record: dict, parallel: int) -> None:
    """Append the code, ``--parallel``, time and start file's digest of a trial's launch to
    its ``launches.jsonl``."""
    launch = {"code": code_version(), "parallel": parallel,
              "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "init_sha256": start_digest(record)}
    with open(os.path.join(record["workdir"], sweeps.LAUNCHES), "a", encoding="utf-8") as f:
        f.write(json.dumps(launch) + "\n")


def reuse_trials(records: list[dict], args: argparse.Namespace) -> dict:
    """Copy every never-launched trial that starts from a file (or nothing) and that a
    finished trial of the ``--reuse-from`` sweeps ran (``experiments/reuse.py``); {name: its
    status}."""
    workdir = os.path.abspath(args.workdir)
    finished = reuse.finished_trials(args.reuse_from, workdir)
    status = {}
    for record in records:
        if (is_staged(record) or is_finished(record)
                or os.path.exists(os.path.join(record["workdir"], sweeps.LAUNCHES))):
            continue
        source = reuse.match(args.resolved[record["name"]], start_digest(record), finished)
        if source is not None:
            reuse.copy_trial(source, record["workdir"])
            status[record["name"]] = f"reused (copied from {source})"
    if status:
        print(f"{len(status)} trials copied from finished trials of other sweeps "
              "(--reuse-from), not trained again")
    return status


def program_of(record: dict) -> str:
    """What decides a trial's compiled programs: its overrides but ``PROGRAM_INPUTS``."""
    return json.dumps({k: v for k, v in record["overrides"].items() if k not in PROGRAM_INPUTS},
                      sort_keys=True, default=str)


def first_of_each_program_first(records: list[dict]) -> list[dict]:
    """``records`` reordered so that the first trial of every compiled program comes before
    the second of any: trials whose overrides differ only in ``PROGRAM_INPUTS`` run the same
    programs, and the later ones load them from the shared cache instead of compiling them
    side by side. Otherwise in the sweep's order."""
    seen: dict[str, int] = {}
    ranks = []
    for record in records:
        program = program_of(record)
        ranks.append(seen.get(program, 0))
        seen[program] = ranks[-1] + 1
    return [records[i] for i in sorted(range(len(records)), key=lambda i: (ranks[i], i))]


def run_trials(records: list[dict], parallel: int, workdir: str, reused: dict) -> dict:
    """Run the unfinished trials, ``parallel`` at a time, the first of each program first
    (``first_of_each_program_first``), each staged one after its parent, and none beside a
    running trial that compiles its program while another trial is ready; the status of every
    trial (``reused``: those just copied from other sweeps)."""
    status = {r["name"]: reused.get(r["name"], "skipped (finished before)")
              for r in records if is_finished(r)}
    queue = first_of_each_program_first([r for r in records if not is_finished(r)])
    compiled = {program_of(r) for r in records if r["name"] in status}
    launcher = TrialLauncher(ROOT, trial_environment(workdir))
    running: dict[str, tuple] = {}
    done = len(status)
    failed = 0
    progress = Progress(len(records), parallel)
    with SignalForwarder(running) as signals:
        while (queue and not signals.received) or running:
            block_orphans(queue, status)
            while len(running) < parallel and not signals.received:
                compiling = {program_of(r) for *_, r in running.values()} - compiled
                record = next_ready(queue, status, compiling)
                if record is None:
                    break
                record_launch(record, parallel)
                log = open(os.path.join(record["workdir"], "log.txt"), "a", encoding="utf-8")
                proc = launcher.start(record["command"], log)
                running[record["name"]] = (proc, log, time.monotonic(), record)
            for name, (proc, log, start, record) in list(running.items()):
                if proc.poll() is None:
                    continue
                log.close()
                del running[name]
                status[name] = trial_status(proc.returncode, record, log.name)
                if status[name] == "finished":
                    done += 1
                    compiled.add(program_of(record))
                    progress.durations.append(time.monotonic() - start)
                elif status[name].startswith("failed"):
                    failed += 1
            progress.show(done, len(running), failed)
            block_orphans(queue, status)
            if (queue and not running and not signals.received
                    and next_ready(list(queue), status) is None):
                raise RuntimeError(f"no trial can start: {[r['name'] for r in queue]} wait for "
                                   "parents that will not finish")  # a bug, never a user error
            time.sleep(POLL_SECONDS if running else 0)
    progress.close()
    for record in queue:
        status[record["name"]] = f"not started ({signals.received[0]} received)"
    return status


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    try:
        records = prepare(args)
        make_quick_inputs(records, args.quick_inputs, args.parallel)
        reused = reuse_trials(records, args)
        if args.emit_commands:
            check_start_files(records, os.path.abspath(args.workdir), args.resolved)
            emit_commands(records, args.emit_commands)
            return 0
        check_init_files(records, missing_is_error=True)
        check_start_files(records, os.path.abspath(args.workdir), args.resolved)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except InputFailed as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    workdir = os.path.abspath(args.workdir)
    status = run_trials(records, args.parallel, workdir, reused)
    write_json(os.path.join(workdir, "sweep_status.json"), status)
    print(f"sweep {args.sweep!r} in {workdir}:")
    for record in records:
        print(f"  {record['name']}: {status[record['name']]}")
    return exit_code(status)


def exit_code(status: dict) -> int:
    """1 when a trial failed (or waits on one that did), 75 when the sweep was interrupted
    (run the same command to resume), else 0; says which on stderr."""
    failures = [name for name, s in status.items() if s.startswith("failed")]
    orphans = [name for name, s in status.items() if s.endswith("did not finish)")]
    if failures or orphans:
        print(f"{len(failures)} of {len(status)} trials failed"
              + (f", {len(orphans)} not started after their parent" if orphans else ""),
              file=sys.stderr)
        return 1
    if any(s.startswith(("interrupted", "not started")) for s in status.values()):
        print("sweep stopped on a signal; run the same command to resume", file=sys.stderr)
        return EXIT_PREEMPTED
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
