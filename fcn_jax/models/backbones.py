"""The classification trunks an FCN can start from (FCN paper, section 3.1 and Table 1):
VGG16 (the paper's main net), AlexNet and GoogLeNet, each at a width multiplier.

Every trunk maps a model input to a dict of features at stride 32 whose ``head_feature``
("fc7", or "inception5b" for GoogLeNet, which has no fully connected layers) score_fr reads,
with ``head_channels`` channels. Only VGG16 names the pool3 / pool4 maps the skip nets and
the max-unpooling decoder read, and only VGG16 has the reference release's Caffe layout: the
other trunks make FCN-32s (Table 1 compares the backbones as FCN-32s).
"""

import math

from flax import nnx

from fcn_jax.models.alexnet import AlexNet
from fcn_jax.models.fully_connected import FullyConnectedHead
from fcn_jax.models.googlenet import GoogLeNet
from fcn_jax.models.layers import receptive_field
from fcn_jax.models.vgg import VGG16

BACKBONES = {"vgg16": VGG16, "alexnet": AlexNet, "googlenet": GoogLeNet}  # model.backbone
FULL_BACKBONE = "vgg16"  # skips, Caffe layout and switches: the trunk with every feature


def check(backbone: str, *, variant: str = "fcn32s", caffe: bool = False,
          reads_trunk_features: bool = False) -> None:
    """A clear error for a backbone this project does not have, or a combination its trunk
    cannot make."""
    if backbone not in BACKBONES:
        raise ValueError(f"model.backbone={backbone!r}: expected one of {sorted(BACKBONES)}")
    if backbone == FULL_BACKBONE:
        return
    if variant != "fcn32s":
        raise ValueError(f"model.backbone={backbone!r} makes FCN-32s only (its pools are not "
                         f"the skips' pool3 / pool4): set model.variant=fcn32s, not {variant!r}")
    if caffe:
        raise ValueError(f"model.backbone={backbone!r}: the reference release's layout "
                         "(model.caffe=True) exists for vgg16 only")
    if reads_trunk_features:
        raise ValueError(f"model.backbone={backbone!r}: the max-unpooling decoder reads VGG16's "
                         "pooling switches; use another model.decoder")


def build_trunk(backbone: str, *, width: float, fc_channels: int | None, dropout_rate: float,
                fc6_kernel: int, fast_paths: str, compute_dtype: str, caffe: bool = False,
                rngs: nnx.Rngs) -> nnx.Module:
    """The ``backbone`` trunk; ``fc_channels`` and ``fc6_kernel`` size fc6 / fc7, which
    GoogLeNet does not have."""
    trunk_class = BACKBONES[backbone]
    shape = {"width": width, "dropout_rate": dropout_rate, "fast_paths": fast_paths,
             "compute_dtype": compute_dtype, "rngs": rngs}
    if issubclass(trunk_class, FullyConnectedHead):
        shape.update(fc_channels=fc_channels, fc6_kernel=fc6_kernel)
    if caffe:
        shape["caffe"] = True
    return trunk_class(**shape)


def table1_columns(model: nnx.Module) -> dict:
    """Table 1's architecture columns of an FCN (built or ``models.shape_of``): its learned
    parameters, and the receptive field and stride of the features score_fr reads."""
    parameters = sum(int(math.prod(v.shape))
                     for _, v in nnx.to_flat_state(nnx.state(model, nnx.Param)))
    field, stride = receptive_field(model.trunk.geometry())
    return {"parameters": parameters, "receptive_field": field, "max_stride": stride}
