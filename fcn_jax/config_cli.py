"""A command's config from its command line, parsed the same way by every command.

``--config FILE[:ARG]`` names a config file (its ``get_config(ARG)``); each
``--config.KEY=VALUE`` (or ``--config.KEY VALUE``) overrides one field. A value is read as
the field's type: text for a text field, ``true``/``false`` for a flag, a Python literal
otherwise (``3e-4``, ``(0.5, 1.5)``; a single value for a tuple field is a 1-tuple). An
unknown key or a value of the wrong type is a ``ValueError`` naming the key, its close
matches and its section's fields, raised before any work starts.

An absl command starts with ``config_cli.run_absl(main, __name__)``: the overrides reach
``main``'s argv untouched, and ``config_cli.resolve`` turns them into the config.
"""

import ast
import os
import sys

import ml_collections
from absl import app

from configs import default

from fcn_jax import cli, sweeps
from fcn_jax.workdir import read_config

PREFIX = "--config."
TRUE_WORDS, FALSE_WORDS = ("true", "1", "yes"), ("false", "0", "no")


def split_overrides(args: list[str]) -> tuple[list[str], dict[str, str]]:
    """(``args`` less the overrides, {dotted key: value text}) in command-line order."""
    rest, overrides = [], {}
    args = list(args)
    while args:
        arg = args.pop(0)
        if not arg.startswith(PREFIX):
            rest.append(arg)
            continue
        key, sep, text = arg[len(PREFIX):].partition("=")
        if not sep:
            if not args:
                raise ValueError(f"{arg} needs a value: {arg}=VALUE")
            text = args.pop(0)
        overrides[key] = text
    return rest, overrides


def parse_flags(argv: list[str]) -> list[str]:
    """absl's flag parsing, with the ``--config.KEY=VALUE`` entries handed on to ``main``."""
    try:
        rest, overrides = split_overrides(argv[1:])
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(cli.EXIT_USER_ERROR)
    remaining = app.parse_flags_with_usage([argv[0]] + rest)
    return remaining + [f"{PREFIX}{key}={text}" for key, text in overrides.items()]


def run_absl(main, module: str) -> None:
    """``app.run`` of a command's ``main`` with one-line errors (fcn_jax/cli.py) and the
    overrides passed through. Run as a console script (``module`` is then not ``__main__``),
    argv[0] is set to ``module``, the name absl's ``--help`` lists the flags of."""
    if module != "__main__":
        sys.argv[0] = module
    app.run(cli.guarded(main), flags_parser=parse_flags)


def field_value(config: ml_collections.ConfigDict, key: str):
    """The current value of ``key`` in ``config``, or None where there is no such field."""
    node = config
    for part in key.split("."):
        if not isinstance(node, ml_collections.ConfigDict) or part not in node:
            return None
        node = node[part]
    return node


def typed(current, text: str):
    """``text`` read as a value for a field that holds ``current``."""
    if isinstance(current, str):
        return text
    if isinstance(current, bool) and text.lower() in TRUE_WORDS + FALSE_WORDS:
        return text.lower() in TRUE_WORDS
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        value = text
    if isinstance(current, tuple) and not isinstance(value, (tuple, list)):
        return (value,)
    return tuple(value) if isinstance(current, tuple) and isinstance(value, list) else value


def typed_overrides(config: ml_collections.ConfigDict, texts: dict[str, str]) -> dict:
    """Command-line override texts as values of ``config``'s fields."""
    return {key: typed(field_value(config, key), text) for key, text in texts.items()}


def load(spec: str) -> ml_collections.ConfigDict:
    """The config of ``FILE[:ARG]``: the file's ``get_config(ARG)``."""
    path, arg = sweeps.split_config_arg(spec)
    module = sweeps.load_config_module(path)
    if not callable(getattr(module, "get_config", None)):
        raise ValueError(f"--config {path}: the file defines no get_config(); pass a config "
                         "file such as configs/default.py")
    return module.get_config(arg) if arg is not None else module.get_config()


def workdir_config(workdir: str, flag: str = "--workdir",
                   has_config_flag: bool = True) -> ml_collections.ConfigDict:
    """The config a training run wrote into ``workdir`` (its config.json over the defaults of
    configs/default.py); the error for a directory without one says what to do: pass
    ``--config`` (where the command has it) or train there first."""
    if not os.path.isfile(os.path.join(workdir, "config.json")):
        fix = ("pass --config, e.g. --config configs/default.py" if has_config_flag else
               "pass a workdir that python -m fcn_jax.main trained")
        raise FileNotFoundError(f"{flag} {workdir} holds no config.json (not a training workdir, "
                                f"or no run has started there): {fix}")
    return read_config(workdir, default.get_config())


def resolve(spec: str | None, argv: list[str], fallback=None) -> ml_collections.ConfigDict:
    """The config of ``--config`` (else ``fallback()``) with ``argv``'s overrides applied and
    then locked (no field can be added). Any other argument is a usage error."""
    rest, texts = split_overrides(argv[1:])
    if rest:
        raise app.UsageError(f"unexpected arguments: {rest}")
    if spec:
        config = load(spec)
    elif fallback is not None:
        config = fallback()
    else:
        raise ValueError("--config is required, e.g. --config configs/default.py")
    sweeps.apply_overrides(config, typed_overrides(config, texts))
    config.lock()
    return config
