"""Declarative config sweeps: axes, their product and zip, overrides, trial names.

A config file defines named sweeps next to ``get_config`` in a module-level dict::

    SWEEPS = {"lr": lambda: sweeps.product(sweeps.sweep("optim.learning_rate", [1e-3, 3e-3]),
                                           sweeps.sweep("seed", [0, 1]))}

Each sweep is a list of override dicts ``{"dotted.key": value}``, one per trial.
"""

import ast
import hashlib
import importlib.util
import itertools
import os
import re

import ml_collections

MAX_NAME_LENGTH = 120


def sweep(key: str, values) -> list[dict]:
    """One axis: ``[{key: v} for v in values]``."""
    values = list(values)
    if not values:
        raise ValueError(f"sweep({key!r}): no values")
    return [{key: v} for v in values]


def product(*axes: list[dict]) -> list[dict]:
    """Every combination of the axes' overrides (the first axis varies slowest)."""
    return [merge(combo) for combo in itertools.product(*axes)]


def zip_(*axes: list[dict]) -> list[dict]:
    """The axes' overrides taken in step; the axes must have the same length."""
    lengths = {len(axis) for axis in axes}
    if len(lengths) > 1:
        raise ValueError(f"zip_: axes have different lengths {[len(a) for a in axes]}")
    return [merge(combo) for combo in zip(*axes)]


def merge(overrides) -> dict:
    """One override dict from several; a key set twice is an error."""
    merged = {}
    for override in overrides:
        for key, value in override.items():
            if key in merged:
                raise ValueError(f"config key {key!r} is set by two axes of one sweep")
            merged[key] = value
    return merged


def apply_overrides(config: ml_collections.ConfigDict, overrides: dict) -> None:
    """Set each ``dotted.key`` of ``overrides`` in ``config``, in place.

    An unknown key or a value of the wrong type is a ``ValueError`` naming the key.
    """
    for key, value in overrides.items():
        parent, _, leaf = key.rpartition(".")
        node = config
        for part in parent.split(".") if parent else []:
            if part not in node or not isinstance(node[part], ml_collections.ConfigDict):
                raise ValueError(f"unknown config key {key!r}: no section {part!r}")
            node = node[part]
        if leaf not in node:
            raise ValueError(f"unknown config key {key!r}; "
                             f"{parent or 'the config'} has {sorted(node.keys())}")
        try:
            setattr(node, leaf, value)
        except TypeError as e:
            raise ValueError(f"config key {key!r}: cannot set {value!r} "
                             f"({type(value).__name__}): {e}") from e


def parse_value(text: str):
    """A command-line value as a Python literal (``1e-3``, ``True``, ``(1, 2)``), else a string."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def format_value(value) -> str:
    """A value as ``--config.key=`` expects it (``repr`` except for strings)."""
    return value if isinstance(value, str) else repr(value)


def trial_name(overrides: dict, swept_keys) -> str:
    """A readable, filesystem-safe name from the swept keys' values, e.g.
    ``learning_rate=0.001,decoder=nearest``.

    Keys are shortened to their last component unless that is ambiguous among ``swept_keys``;
    a name longer than ``MAX_NAME_LENGTH`` is cut and given a hash of the full name.
    """
    swept_keys = list(swept_keys)
    leaves = [k.rpartition(".")[2] for k in swept_keys]
    parts = []
    for key in (k for k in swept_keys if k in overrides):
        short = key.rpartition(".")[2]
        label = short if leaves.count(short) == 1 else key
        parts.append(f"{label}={format_value(overrides[key])}")
    name = re.sub(r"[^A-Za-z0-9._=,+-]+", "_", ",".join(parts)).strip("_") or "trial"
    if len(name) > MAX_NAME_LENGTH:
        digest = hashlib.sha1(name.encode()).hexdigest()[:8]
        name = f"{name[:MAX_NAME_LENGTH - 9]}-{digest}"
    return name


def swept_keys(trials: list[dict]) -> list[str]:
    """Keys whose value differs between trials, in order of first appearance."""
    keys = list(dict.fromkeys(k for trial in trials for k in trial))
    missing = object()
    return [k for k in keys
            if len({repr(trial.get(k, missing)) for trial in trials}) > 1 or len(trials) == 1]


def name_trials(trials: list[dict]) -> list[tuple[str, dict]]:
    """``(name, overrides)`` per trial; two trials with one name is an error."""
    keys = swept_keys(trials)
    named = [(trial_name(t, keys), t) for t in trials]
    seen = {}
    for name, overrides in named:
        if name in seen:
            raise ValueError(f"trials {seen[name]} and {overrides} share the name {name!r}")
        seen[name] = overrides
    return named


def split_config_arg(config_arg: str) -> tuple[str, str | None]:
    """``configs/x.py:arg`` -> (``configs/x.py``, ``arg``); no ``:`` -> (path, None)."""
    path, sep, arg = config_arg.partition(":")
    return path, (arg if sep else None)


def load_config_module(path: str):
    """Import a config file by path."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"config file {path!r} does not exist")
    name = "sweep_config_" + hashlib.sha1(os.path.abspath(path).encode()).hexdigest()[:8]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_sweep(config_arg: str, sweep_name: str) -> tuple[ml_collections.ConfigDict, list]:
    """The base config of ``config_arg`` and the named sweep's override dicts.

    Every trial's overrides are applied to a copy of the base config, so an unknown key or a
    bad value fails here, before any trial runs.
    """
    path, arg = split_config_arg(config_arg)
    module = load_config_module(path)
    available = getattr(module, "SWEEPS", {})
    if sweep_name not in available:
        raise ValueError(f"{path} has no sweep {sweep_name!r}; available: {sorted(available)}")
    base = module.get_config(arg) if arg is not None else module.get_config()
    trials = list(available[sweep_name]())
    if not trials:
        raise ValueError(f"sweep {sweep_name!r} of {path} has no trials")
    for overrides in trials:
        apply_overrides(base.copy_and_resolve_references(), overrides)
    return base, trials
