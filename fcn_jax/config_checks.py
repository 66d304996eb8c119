"""One validation pass over a resolved config, before anything is built or written.

Each rule names a dotted key, what is allowed, and a test of the value; ``validate`` raises
one ``ConfigError`` listing every broken rule as ``key = value: allowed``. Keys a config does
not have (a trimmed test config) are skipped; unknown keys are refused earlier, by the
override parsers.
"""

import numbers

import ml_collections

from fcn_jax.class_balance import BALANCES
from fcn_jax.data import BUILDERS
from fcn_jax.backends import FAST_PATHS
from fcn_jax.models import COMPUTE_DTYPES, backbones
from fcn_jax.models.decoders import DECODERS, reads_trunk_features
from fcn_jax.models.fcn import VARIANT_STRIDES
from fcn_jax.ops.shift_stitch import allowed_factors
from fcn_jax.optim import SCHEDULES
from fcn_jax.parallel import MODES


class ConfigError(ValueError):
    """A config value outside its allowed range; the message names the key and the range."""


def integer(low: int, high: int | None = None):
    """An int (not a bool) in [low, high]."""
    def check(value):
        return (isinstance(value, numbers.Integral) and not isinstance(value, bool)
                and value >= low and (high is None or value <= high))
    allowed = f"an integer >= {low}" if high is None else f"an integer in [{low}, {high}]"
    return check, allowed


def real(low: float, high: float | None = None, *, low_open: bool = False,
         high_open: bool = False):
    """A real number (not a bool) between low and high, each end open or closed."""
    def check(value):
        if not isinstance(value, numbers.Real) or isinstance(value, bool) or value != value:
            return False
        above = value > low if low_open else value >= low
        below = high is None or (value < high if high_open else value <= high)
        return above and below
    left, right = "(" if low_open else "[", ")" if high_open or high is None else "]"
    return check, f"a number in {left}{low}, {'inf' if high is None else high}{right}"


class RegisteredNames:
    """"one of (...)" listing a registry's names when the message is written (decoders
    registered after this module was imported included)."""

    def __init__(self, registry: dict):
        self.registry = registry

    def __str__(self) -> str:
        return f"one of {tuple(self.registry)}"


def one_of(choices):
    choices = tuple(choices)
    return (lambda value: value in choices), f"one of {choices}"


def scale_pair(value):
    return (isinstance(value, (tuple, list)) and len(value) == 2
            and all(real(0, low_open=True)[0](v) for v in value) and value[0] <= value[1])


def positive_reals(value):
    return (isinstance(value, (tuple, list)) and len(value) > 0
            and all(real(0, low_open=True)[0](v) for v in value))


def non_negative_reals(value):
    return (isinstance(value, (tuple, list))
            and all(real(0)[0](v) for v in value))


def increasing_steps(value):
    return (isinstance(value, (tuple, list)) and all(integer(1)[0](v) for v in value)
            and list(value) == sorted(set(value)))


RULES = (
    ("seed", *integer(0)),
    ("data.name", *one_of(BUILDERS)),
    ("data.folder_validation_fraction", *real(0, 1, low_open=True, high_open=True)),
    ("data.train_examples", *integer(0)),
    ("data.crop_size", *integer(1)),
    ("data.scale_range", scale_pair, "a pair (low, high) with 0 < low <= high"),
    ("data.num_threads", *integer(1)),
    ("data.prefetch", *integer(0)),
    ("model.variant", *one_of(VARIANT_STRIDES)),
    ("model.backbone", *one_of(backbones.BACKBONES)),
    ("model.width", *real(0, low_open=True)),
    ("model.fc_channels", *integer(0)),
    ("model.fc6_kernel", *integer(1)),
    ("model.dropout_rate", *real(0, 1, high_open=True)),
    ("model.decoder", lambda value: value in DECODERS, RegisteredNames(DECODERS)),
    ("model.fast_paths", *one_of(FAST_PATHS)),
    ("model.compute_dtype", *one_of(COMPUTE_DTYPES)),
    ("model.skip_scales", lambda v: isinstance(v, (tuple, list)) and len(v) == 2
     and all(real(0)[0](s) for s in v), "a pair (pool4, pool3) of numbers >= 0"),
    ("loss.class_weights", non_negative_reals, "() or one number >= 0 per class"),
    ("loss.balance", *one_of(BALANCES)),
    ("loss.sampling_rate", *real(0, 1, low_open=True)),
    ("optim.name", *one_of(("adam", "sgd"))),
    ("optim.learning_rate", *real(0)),
    ("optim.momentum", *real(0, 1, high_open=True)),
    ("optim.b1", *real(0, 1, high_open=True)),
    ("optim.b2", *real(0, 1, high_open=True)),
    ("optim.weight_decay", *real(0)),
    ("optim.bias_lr_mult", *real(0)),
    ("optim.schedule", *one_of(SCHEDULES)),
    ("optim.warmup_steps", *integer(0)),
    ("optim.decay_steps", increasing_steps, "increasing step numbers >= 1"),
    ("train.batch_size", *integer(1)),
    ("train.num_steps", *integer(0)),
    ("train.log_every", *integer(1)),
    ("train.eval_every", *integer(1)),
    ("train.checkpoint_every", *integer(1)),
    ("train.max_checkpoints", *integer(1)),
    ("train.num_overlays", *integer(0)),
    ("eval.batch_size", *integer(1)),
    ("eval.tile_size", *integer(0)),
    ("eval.tile_stride", *integer(0)),
    ("eval.scales", positive_reals, "a non-empty tuple of numbers > 0"),
    ("parallel.mode", *one_of(MODES)),
    ("parallel.num_devices", *integer(0)),
    ("parallel.cpu_devices", *integer(1)),
)


def lookup(config: ml_collections.ConfigDict, key: str):
    """(found, value) of a dotted key."""
    node = config
    for part in key.split("."):
        if not isinstance(node, ml_collections.ConfigDict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def problems(config: ml_collections.ConfigDict) -> list[str]:
    """``config.key = value: expected ...`` for every broken rule, in the rules' order."""
    found = []
    for key, check, allowed in RULES:
        present, value = lookup(config, key)
        if present and not check(value):
            found.append(f"config.{key} = {value!r}: expected {allowed}")
    present, stride = lookup(config, "eval.tile_stride")
    _, size = lookup(config, "eval.tile_size")
    if present and isinstance(stride, int) and isinstance(size, int) and stride > size:
        found.append(f"config.eval.tile_stride = {stride!r}: expected at most eval.tile_size "
                     f"({size}), or 0")
    present, factor = lookup(config, "model.shift_stitch")
    _, variant = lookup(config, "model.variant")
    if present and variant in VARIANT_STRIDES:
        allowed = allowed_factors(VARIANT_STRIDES[variant])
        if factor not in allowed or isinstance(factor, bool):
            found.append(f"config.model.shift_stitch = {factor!r}: expected one of {allowed} "
                         f"(factors that divide {variant}'s stride into an even stride; 1 = off)")
        elif factor > 1 and lookup(config, "model.caffe")[1] is True:
            found.append(f"config.model.shift_stitch = {factor!r}: expected 1 with "
                         "model.caffe=True (the Caffe layout's crops assume its own stride)")
    present, backbone = lookup(config, "model.backbone")
    if present and backbone in backbones.BACKBONES:
        try:
            backbones.check(backbone, variant=variant if variant in VARIANT_STRIDES else "fcn32s",
                            caffe=lookup(config, "model.caffe")[1] is True,
                            reads_trunk_features=reads_trunk_features(
                                lookup(config, "model.decoder")[1]))
        except ValueError as error:
            found.append(f"config.{error}")
    present, rate = lookup(config, "loss.sampling_rate")
    if present and lookup(config, "model.caffe")[1] is True and rate != 1:
        found.append(f"config.loss.sampling_rate = {rate!r}: expected 1 with model.caffe=True "
                     "(the Caffe layout's padding and crops do not align 32-pixel loss cells "
                     "with its score cells)")
    return found


def validate(config: ml_collections.ConfigDict) -> None:
    """Raise a ``ConfigError`` naming every key whose value is out of range."""
    found = problems(config)
    if found:
        raise ConfigError("; ".join(found) + " (set it with --config.KEY=VALUE)")
