"""Declarative config sweeps: axes, their product and zip, overrides, trial names.

A config file defines named sweeps next to ``get_config`` in a module-level dict::

    SWEEPS = {"lr": lambda: sweeps.product(sweeps.sweep("optim.learning_rate", [1e-3, 3e-3]),
                                           sweeps.sweep("seed", [0, 1]))}

Each sweep is a list of override dicts ``{"dotted.key": value}``, one per trial. A staged
trial (paper section 4.2: FCN-16s starts from the trained FCN-32s, FCN-8s from FCN-16s) also
holds ``PARENT``: the overrides of the trial whose workdir initialises it (``stages``). A
longer run of a trial holds ``CONTINUES``: the trial it trains further instead of repeating
its steps (``lengthened``; fcn_jax/continuation.py).

A config file may describe a sweep as a study in a module-level ``STUDIES`` dict (same name):
``{"reference": {key: value}, "claims": [{"arm": {key: value}, "versus": {key: value},
"expect": "higher" | "lower" | "same", "margin": 1.0, "paper": "what the paper says"}]}``
(``versus`` defaults to the reference arm; ``margin``, in mean IU points, is how close "same"
must be; a value ``None`` means "key not set by the trial"). Optionally ``"prediction_grid":
{title: arm}`` (the paper's Figure 4: those arms' predictions side by side),
``"coarse_upper_bound": [factor, ...]`` (the appendix: the best mean IU of a prediction at
each stride), ``"backbone_table": True`` (Table 1's columns per arm's backbone) and
``"value_names": {key: [[value, name], ...]}`` (what a swept value means, shown in the
report's tables and figures in the sweep's order of values, e.g. ``data.train_examples`` 0 as
"all"). Each arm must pick out exactly one setting (swept values but the seed).
``experiments.report`` then gives each arm's difference to the reference arm, paired by seed,
and a row per claim.
"""

import difflib
import hashlib
import importlib.util
import itertools
import json
import os
import re

import ml_collections

MAX_NAME_LENGTH = 120
PARENT = "@parent"                  # a trial's key: the overrides of the trial it starts from
INIT_KEY = "model.init_from"        # what a staged trial's parent workdir is passed as
CONTINUES = "@continues"            # a trial's key: the overrides of the shorter run it extends
CONTINUE_KEY = "train.continue_from"  # what that run's workdir is passed as
LINKS = {PARENT: INIT_KEY, CONTINUES: CONTINUE_KEY}
STEPS_KEY = "train.num_steps"       # the one config value a longer run changes
EXPECTATIONS = ("higher", "lower", "same")
CLAIM_FIELDS = {"arm", "versus", "expect", "paper", "margin"}
STUDY_FIELDS = {"reference", "claims", "prediction_grid", "coarse_upper_bound", "backbone_table",
                "value_names"}
SEED_KEY = "seed"                   # trials that differ only in it are one setting's repeats
LAUNCHES = "launches.jsonl"         # per trial: a line per launch (code, --parallel, time)


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


def stages(*trials: dict) -> list[dict]:
    """A staged chain: each trial after the first starts from the previous one's workdir.

    Build one chain per combination of the other values (e.g. per seed, with every key in
    each trial) rather than passing chains to ``product``: a parent is found by its overrides.
    """
    chain = [dict(trials[0])]
    for trial in trials[1:]:
        parent = {k: v for k, v in chain[-1].items() if k != PARENT}
        chain.append({**trial, PARENT: parent})
    return chain


def lengthened(trial: dict, *num_steps: int) -> list[dict]:
    """``trial``'s run trained on to each of ``num_steps`` in turn, each trial continuing the
    previous one's workdir: under a fixed learning rate (section 4.1) the first n steps of a
    longer run are the n-step run, so each count costs only its extra steps."""
    chain, previous = [], trial
    for steps in num_steps:
        previous = {**previous, STEPS_KEY: steps,
                    CONTINUES: {k: v for k, v in previous.items() if k != CONTINUES}}
        chain.append(previous)
    return chain


def config_overrides(trial: dict) -> dict:
    """A trial's config overrides (its ``PARENT`` and ``CONTINUES`` links left out)."""
    return {k: v for k, v in trial.items() if k not in LINKS}


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
                raise ValueError(f"unknown config key {key!r}: no section {part!r}"
                                 + close_matches(part, node))
            node = node[part]
        if leaf not in node:
            raise ValueError(f"unknown config key {key!r}" + close_matches(leaf, node)
                             + f"; {parent or 'the config'} has {sorted(node.keys())}")
        try:
            setattr(node, leaf, value)
        except TypeError as e:
            raise ValueError(f"config key {key!r}: cannot set {value!r} "
                             f"({type(value).__name__}): {e}") from e


def close_matches(name: str, node: ml_collections.ConfigDict) -> str:
    """", did you mean ...?" for the fields of ``node`` close to ``name``, else ""."""
    found = difflib.get_close_matches(name, list(node.keys()), n=3)
    return f" (did you mean {' or '.join(repr(f) for f in found)}?)" if found else ""


def format_value(value) -> str:
    """A value as ``--config.key=`` expects it (``repr`` except for strings)."""
    return value if isinstance(value, str) else repr(value)


def as_json(value):
    """``value`` as it reads back from JSON (tuples become lists), for comparisons."""
    return json.loads(json.dumps(value))


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
    keys = list(dict.fromkeys(k for trial in trials for k in config_overrides(trial)))
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


def parent_links(named: list[tuple[str, dict]]) -> dict[str, dict[str, str]]:
    """{trial name: {config key: name of the trial whose workdir it is passed}} for the
    trials with links (``LINKS``). A linked trial that is not a trial of the sweep, a staged
    trial that also sets ``model.init_from``, a longer run that changes more than the step
    count of the run it continues, or a cycle is an error."""
    by_overrides = {repr(sorted(config_overrides(t).items())): (name, t) for name, t in named}
    links = {}
    for name, trial in named:
        if PARENT in trial and INIT_KEY in trial:
            raise ValueError(f"trial {name!r} sets both {PARENT} and {INIT_KEY}: its parent's "
                             "workdir is what initialises it")
        for link, key in LINKS.items():
            if link not in trial:
                continue
            found = by_overrides.get(repr(sorted(config_overrides(trial[link]).items())))
            if found is None:
                what = "parent" if link == PARENT else "shorter run"
                raise ValueError(f"trial {name!r}: its {what} {trial[link]} is not a trial of "
                                 "the sweep")
            if link == CONTINUES:
                check_continues(name, trial, found[1])
            links.setdefault(name, {})[key] = found[0]
    for name in links:
        seen, node = {name}, name
        while node in links:
            node = wait_for(links[node])
            if node in seen:
                raise ValueError(f"trial {name!r}: its chain of parents is a cycle")
            seen.add(node)
    return links


def check_continues(name: str, trial: dict, shorter: dict) -> None:
    """A longer run changes only the step count of the run it continues, to more steps."""
    def rest(t):
        return as_json({k: v for k, v in t.items() if k not in (STEPS_KEY, CONTINUES)})
    if rest(trial) != rest(shorter) or trial.get(STEPS_KEY, 0) <= shorter.get(STEPS_KEY, 0):
        raise ValueError(f"trial {name!r}: it continues {config_overrides(shorter)}, so it "
                         f"must differ from that trial only in a larger {STEPS_KEY}")


def wait_for(links: dict[str, str]) -> str:
    """The trial a linked trial waits for: the run it continues, else its parent."""
    return links.get(CONTINUE_KEY, links.get(INIT_KEY))


def parent_names(named: list[tuple[str, dict]]) -> dict[str, str]:
    """{trial name: the trial it waits for} for the linked trials (``parent_links``)."""
    return {name: wait_for(links) for name, links in parent_links(named).items()}


def settings(trials: list[dict]) -> list[dict]:
    """The distinct settings of a sweep: each trial's swept values but the seed, as the report
    groups them into rows."""
    keys = [k for k in swept_keys(trials) if k != SEED_KEY]
    found = {}
    for trial in trials:
        setting = {k: config_overrides(trial).get(k) for k in keys}
        found.setdefault(json.dumps(as_json(setting), sort_keys=True), setting)
    return list(found.values())


def check_study(study: dict, trials: list[dict], where: str) -> None:
    """A study (``{}``: none) names a reference arm and its claims; every arm (swept values)
    must pick out exactly one setting of the sweep, the rows the report compares."""
    if not study:
        return
    unknown = set(study) - STUDY_FIELDS
    if unknown or "reference" not in study:
        raise ValueError(f"{where}: study fields {sorted(study)}; expected 'reference' and "
                         f"optionally {sorted(STUDY_FIELDS - {'reference'})}")
    if study.get("backbone_table", True) is not True:
        raise ValueError(f"{where}: backbone_table {study['backbone_table']!r}; expected True")
    factors = study.get("coarse_upper_bound", [])
    if not all(isinstance(f, int) and f >= 1 for f in factors):
        raise ValueError(f"{where}: coarse_upper_bound {factors}; expected strides (ints >= 1)")
    check_value_names(study.get("value_names", {}), trials, where)
    arms = [("reference", study["reference"])]
    grid = study.get("prediction_grid", {})
    if not isinstance(grid, dict):
        raise ValueError(f"{where}: prediction_grid {grid}; expected {{column title: arm}}")
    arms += [(f"prediction_grid {title!r}", arm) for title, arm in grid.items()]
    for claim in study.get("claims", []):
        label = f"claim {claim.get('paper')!r}"
        if not {"arm", "expect", "paper"} <= set(claim) <= CLAIM_FIELDS:
            raise ValueError(f"{where}: {label} has fields {sorted(claim)}; expected arm, "
                             "expect, paper and optionally versus, margin")
        if claim["expect"] not in EXPECTATIONS:
            raise ValueError(f"{where}: {label} expects {claim['expect']!r}; expected one of "
                             f"{EXPECTATIONS}")
        arms.append((label, claim["arm"]))
        if "versus" in claim:
            arms.append((f"{label} versus", claim["versus"]))
    swept = set(swept_keys(trials)) - {SEED_KEY}
    rows = settings(trials)
    for label, arm in arms:
        if not set(arm) <= swept:
            raise ValueError(f"{where}: the {label} arm {arm} names keys the sweep does not "
                             f"vary ({sorted(set(arm) - swept)}); the swept ones: {sorted(swept)}")
        found = [row for row in rows if matches(row, arm)]
        if len(found) != 1:
            raise ValueError(f"{where}: the {label} arm {arm} matches {len(found)} settings of "
                             "the sweep, not one" + (": name more of their swept values"
                                                     if found else ""))


def check_value_names(names: dict, trials: list[dict], where: str) -> None:
    """A study's ``value_names``: for swept keys, ``[value, name]`` pairs of values the sweep
    has and distinct non-empty names."""
    values = {k: [as_json(s[k]) for s in settings(trials)]
              for k in swept_keys(trials) if k != SEED_KEY}
    for key, pairs in names.items():
        if key not in values:
            raise ValueError(f"{where}: value_names names {key!r}, which the sweep does not "
                             f"vary; the swept keys: {sorted(values)}")
        if not (isinstance(pairs, list) and all(
                isinstance(p, (list, tuple)) and len(p) == 2 and isinstance(p[1], str) and p[1]
                for p in pairs)):
            raise ValueError(f"{where}: value_names[{key!r}] {pairs!r}; expected "
                             "[[value, name], ...] with non-empty names")
        unknown = [v for v, _ in pairs if as_json(v) not in values[key]]
        if unknown or len({n for _, n in pairs}) != len(pairs):
            raise ValueError(f"{where}: value_names[{key!r}] {pairs!r}; expected distinct names "
                             f"of values the sweep has: {values[key]}")


def matches(setting: dict, arm: dict) -> bool:
    """Whether a setting has every value of a study arm (``None``: not set by the trial)."""
    return all(as_json(setting.get(k)) == as_json(v) for k, v in arm.items())


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


def load_sweep(config_arg: str, sweep_name: str) -> tuple[ml_collections.ConfigDict, list, dict]:
    """The base config of ``config_arg``, the named sweep's override dicts and its study
    (``{}`` when the file's ``STUDIES`` has none of that name).

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
        apply_overrides(base.copy_and_resolve_references(), config_overrides(overrides))
    parent_names(name_trials(trials))
    study = getattr(module, "STUDIES", {}).get(sweep_name, {})
    check_study(study, trials, f"{path} study {sweep_name!r}")
    return base, trials, study


def load_quick(config_arg: str, workdir: str) -> tuple:
    """The quick form of the config file's studies (``experiments.sweep --quick``): its
    ``quick_trial`` (trial overrides -> their seconds-long form, or None to leave the trial
    out) and its ``quick_inputs(workdir)`` ({full-form file: (quick file, python arguments
    that write it)})."""
    path, _ = split_config_arg(config_arg)
    module = load_config_module(path)
    if not (hasattr(module, "quick_trial") and hasattr(module, "quick_inputs")):
        raise ValueError(f"{path} defines no quick form (quick_trial and quick_inputs), which "
                         "--quick needs; see configs/default.py")
    return module.quick_trial, module.quick_inputs(workdir)
