"""Finished trials of other sweeps, copied instead of trained again (``--reuse-from``).

Studies share arms: `balancing`'s unweighted arm, `augmentation`'s mirrored one and
`data_size`'s 1000 scenes are one config with the same seeds, and `precision`'s float32 arm is
`upsampling`'s fixed-bilinear one. Training is deterministic, so a trial whose resolved config
equals a finished trial's (its ``config.json``), starting from a file of the same contents, is
that trial: its workdir (checkpoints, logs, results, and the launches that record the code it
ran) is copied rather than trained again; a longer run made by continuing a shorter one
equals the straight run, so how a run got to its steps does not matter. Only a trial never
launched is filled this way, and only one that starts from a file or from nothing (a staged
trial starts from a parent in its own sweep).
"""

import hashlib
import json
import os
import shutil

from fcn_jax import sweeps

# How a run was started, by path: a start file (its contents are compared instead) and the
# shorter run it continued (a continued run is the straight one: fcn_jax/continuation.py).
START_KEYS = (sweeps.INIT_KEY, sweeps.CONTINUE_KEY)
REUSED = "reused.json"  # in a copied trial's workdir: where it was copied from
NOT_COPIED = (".lock", "trial.json", REUSED)


def file_digest(path: str) -> str | None:
    """The sha256 of a start file's contents; None for no file (random initialisation)."""
    if not path:
        return None
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_json(path: str):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def sweep_dirs(directory: str) -> list[str]:
    """``directory`` if it is a sweep directory (it holds sweep.json), else the sweep
    directories in it."""
    if os.path.isfile(os.path.join(directory, "sweep.json")):
        return [directory]
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"--reuse-from {directory}: no such directory")
    return sorted(os.path.join(directory, name) for name in os.listdir(directory)
                  if os.path.isfile(os.path.join(directory, name, "sweep.json")))


def finished_trials(directories: list[str], own: str) -> list[tuple[str, dict, set]]:
    """(workdir, config.json without its start file, start-file digests of its launches) of
    every finished trial in the sweeps of ``directories``, the sweep ``own`` left out."""
    found = []
    for sweep_dir in (d for directory in directories for d in sweep_dirs(directory)):
        if os.path.abspath(sweep_dir) == os.path.abspath(own):
            continue
        manifest = os.path.join(sweep_dir, "sweep.json")
        try:
            trials = read_json(manifest)["trials"]
        except (ValueError, KeyError) as error:
            raise ValueError(f"--reuse-from: {manifest} is not a sweep's manifest ({error!r}); "
                             "name sweep directories, or move that file out") from None
        for trial in trials:
            workdir = os.path.join(sweep_dir, trial["name"])
            paths = [os.path.join(workdir, name) for name in ("results.json", "config.json",
                                                              sweeps.LAUNCHES)]
            if all(map(os.path.isfile, paths)):
                with open(paths[2], encoding="utf-8") as f:
                    digests = {json.loads(line).get("init_sha256", "unknown")
                               for line in f if line.strip()}
                found.append((workdir, without_start(read_json(paths[1])), digests))
    return found


def without_start(config: dict) -> dict:
    """A resolved config without the paths it was started from (``START_KEYS``)."""
    config = dict(config)
    for key in START_KEYS:
        section, field = key.split(".")
        config[section] = {k: v for k, v in config[section].items() if k != field}
    return config


def match(config: dict, digest: str | None, trials: list) -> str | None:
    """The workdir of a finished trial of ``config`` (resolved, as config.json holds it) that
    started from a file of ``digest`` (every launch of it), or None."""
    wanted = without_start(config)
    for workdir, other, digests in trials:
        if other == wanted and digests == {digest}:
            return workdir
    return None


def copy_trial(source: str, workdir: str) -> None:
    """Copy a finished trial's workdir into ``workdir`` (which holds only its trial.json), its
    results last: an interrupted copy is an unfinished trial, trained on the next run."""
    results = os.path.join(source, "results.json")
    shutil.copytree(source, workdir, dirs_exist_ok=True,
                    ignore=lambda d, names: [n for n in names if n in NOT_COPIED
                                             or os.path.join(d, n) == results])
    with open(os.path.join(workdir, REUSED), "w", encoding="utf-8") as f:
        json.dump({"from": os.path.abspath(source)}, f)
    shutil.copy2(results, os.path.join(workdir, "results.json"))
