"""Model construction from a config (FCN paper, section 4)."""

import jax
import ml_collections
from flax import nnx

from fcn_jax.models.caffe import CaffeFCN
from fcn_jax.models.fcn import FCN

COMPUTE_DTYPES = ("float32", "bfloat16")  # model.compute_dtype


def constructor(model_config: ml_collections.ConfigDict, num_classes: int):
    """A function of one PRNG key that constructs the FCN ``model_config`` describes."""
    m = model_config
    model_class = CaffeFCN if m.caffe else FCN

    def construct(key: jax.Array):
        return model_class(num_classes, variant=m.variant, width=m.width,
                           fc_channels=m.fc_channels or None, dropout_rate=m.dropout_rate,
                           decoder=m.decoder, skip_scales=tuple(m.skip_scales),
                           fc6_kernel=m.fc6_kernel, fast_paths=m.fast_paths,
                           compute_dtype=m.compute_dtype, shift_stitch=m.shift_stitch,
                           backbone=m.backbone, rngs=nnx.Rngs(params=key))
    return construct


def build(model_config: ml_collections.ConfigDict, num_classes: int, seed: int) -> FCN:
    """Build the FCN that ``model_config`` (a config's ``model`` section) describes,
    initialised from ``seed``.

    ``model.backbone`` picks the trunk (models.backbones); ``model.caffe`` the reference
    release's layout (models.caffe.CaffeFCN); ``model.fast_paths`` the kernels
    (backends.kernels); ``model.compute_dtype`` the dtype of activations and convolutions
    (parameters stay float32); ``model.shift_stitch`` the shift-and-stitch factor (1 = off).

    The initialisation runs as one compiled program (the same values as running it op by op,
    in a fraction of the time: one compilation instead of one per initialiser). The key is
    the program's argument, not a constant in it, so runs that differ only in seed share the
    program (and its entry in a persistent compilation cache).
    """
    return nnx.jit(constructor(model_config, num_classes))(jax.random.key(seed))


def shape_of(model_config: ml_collections.ConfigDict, num_classes: int) -> FCN:
    """The same FCN with abstract arrays (shapes only, nothing computed or allocated): for
    counting the parameters of nets too large to build here."""
    return nnx.eval_shape(constructor(model_config, num_classes), jax.random.key(0))
