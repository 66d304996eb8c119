"""The run directory: created and checked for writing before any work starts, locked by the
one process that trains in it; JSON files written into it atomically, as strict JSON (an
undefined value such as the IU of a class never seen or predicted is ``null``, not ``NaN``)."""

import fcntl
import json
import math
import os
import socket
import uuid

import ml_collections


def ensure_writable(workdir: str) -> str:
    """Create ``workdir`` if needed and prove a file can be written there; else say why."""
    path = os.path.abspath(workdir)
    probe = os.path.join(path, f".write-test-{uuid.uuid4().hex}")
    try:
        os.makedirs(path, exist_ok=True)
        with open(probe, "w", encoding="utf-8") as f:
            f.write("ok")
        os.remove(probe)
    except OSError as error:
        raise PermissionError(
            f"workdir {path} is not a writable directory ({type(error).__name__}: "
            f"{error.strerror or error}); pass a --workdir you can write to, or fix its "
            "permissions") from error
    return path


def write_text(path: str, text: str) -> None:
    """Write text atomically (a temporary file renamed into place)."""
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def finite_or_null(value):
    """``value`` with every NaN or infinite float replaced by None (JSON's null)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_or_null(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_null(v) for v in value]
    return value


def strict_json(payload, **options) -> str:
    """``payload`` as strict JSON: non-finite numbers written as null."""
    return json.dumps(finite_or_null(payload), allow_nan=False, **options)


def write_json(path: str, payload) -> None:
    """Write strict JSON atomically (a temporary file renamed into place)."""
    write_text(path, strict_json(payload, indent=2) + "\n")


def tuples(value):
    """JSON lists back to the tuples the config had."""
    if isinstance(value, dict):
        return {k: tuples(v) for k, v in value.items()}
    return tuple(tuples(v) for v in value) if isinstance(value, list) else value


def unknown_fields(saved: dict, template: ml_collections.ConfigDict, prefix: str = "") -> list:
    """Dotted keys of ``saved`` that ``template`` does not have."""
    found = []
    for key, value in saved.items():
        if key not in template:
            found.append(prefix + key)
        elif isinstance(value, dict) and isinstance(template[key], ml_collections.ConfigDict):
            found += unknown_fields(value, template[key], f"{prefix}{key}.")
    return found


def read_config(workdir: str, template: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """The resolved config a training run wrote into its workdir, laid over ``template`` (the
    current defaults), so a workdir written before a field existed gets its default."""
    path = os.path.join(workdir, "config.json")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: not found; --workdir must be a training workdir "
                                "(python -m fcn_jax.main writes its config.json)")
    with open(path, encoding="utf-8") as f:
        saved = tuples(json.load(f))
    unknown = unknown_fields(saved, template)
    if unknown:
        raise ValueError(f"{path} has {', '.join(unknown[:5])}, which an FCN config does not: "
                         "not an FCN training workdir (a classifier's?)")
    template.update(saved)
    return template


def flat_items(tree: dict, prefix: str = "") -> dict:
    """{"a.b": value} of a nested dict."""
    items = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            items.update(flat_items(value, f"{prefix}{key}."))
        else:
            items[prefix + key] = value
    return items


def config_differences(workdir: str, config: ml_collections.ConfigDict) -> list[str]:
    """``key: A in the workdir, B here`` for each field of ``config`` whose value differs from
    the one in the workdir's config.json (model fields first); [] without a config.json."""
    path = os.path.join(workdir, "config.json")
    if not os.path.isfile(path):
        return []
    with open(path, encoding="utf-8") as f:
        saved = flat_items(json.load(f))
    current = flat_items(json.loads(config.to_json()))
    keys = sorted((k for k in saved.keys() & current.keys() if saved[k] != current[k]),
                  key=lambda k: (not k.startswith("model."), k))
    return [f"{k}: {saved[k]!r} in the workdir, {current[k]!r} here" for k in keys]


class WorkdirInUse(RuntimeError):
    """Another live process holds the workdir's lock."""


LOCK_NAME = ".lock"


class WorkdirLock:
    """An exclusive lock on ``<workdir>/.lock`` for one training process.

    ``fcntl.flock`` ties the lock to the open file, so the kernel releases it when its
    process ends however it ends: the lock file a killed run leaves behind is taken over by
    the next run, while a live holder makes a second run stop at once. The file records the
    holder's pid and host, for the message.
    """

    def __init__(self, workdir: str):
        self.path = os.path.join(os.path.abspath(workdir), LOCK_NAME)
        self.fd = None

    def __enter__(self) -> "WorkdirLock":
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 200).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise WorkdirInUse(
                f"{os.path.dirname(self.path)} is in use by {holder} (lock file {self.path}); "
                "wait for that run to end, or pass another --workdir") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode())
        self.fd = fd
        return self

    def __exit__(self, *exc) -> None:
        os.close(self.fd)  # releases the lock; the file stays (removing it would race)
        self.fd = None
