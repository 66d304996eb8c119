"""VGG16 trunk with convolutionalized fc6/fc7 (FCN paper, section 3.1 and 4.1).

fc6 becomes a 7x7 convolution and fc7 a 1x1 convolution, so the classifier slides over inputs
of any size (``fc6_kernel``: the pool5 size of the classifier's input, 7 for 224x224 ImageNet
crops, 3 for the 96x96 images of the miniature protocol). A width multiplier scales every channel count (1.0 is the paper's VGG16) so the
same architecture can be studied on a CPU. No BatchNorm, as in the paper.

Pooling rounds up (ceil mode), so pool k of an H-pixel input has exactly ceil(H / 2**k)
pixels; convolutions use "SAME" padding. ``caffe=True`` is the reference release's layout
instead: conv1_1 padded by 100 pixels (so any input gives a valid fc6) and a VALID fc6.
Dropout masks are drawn per example from per-example keys, so a data-parallel step draws the
same masks however the batch is split over devices. Convolutions and pooling are the
backend's (``backends.kernels``, ``model.fast_paths``), the same values either way.
``compute_dtype`` (``model.compute_dtype``): the activations' and convolutions' dtype; the
parameters stay float32 (bfloat16 = mixed precision).
"""

import jax
import jax.numpy as jnp
from flax import nnx

from fcn_jax import backends
from fcn_jax.models.fully_connected import FullyConnectedHead
from fcn_jax.models.layers import he_normal, scaled

TRUNK_STRIDE = 32  # pool5: the coarsest feature map is 1/32 of the input
# (block name, number of 3x3 convs, channels at width 1.0) -- conv1..conv5.
VGG16_BLOCKS = (("conv1", 2, 64), ("conv2", 2, 128), ("conv3", 3, 256),
                ("conv4", 3, 512), ("conv5", 3, 512))
FC_CHANNELS = 4096
FC6_KERNEL = 7  # VGG16's fc6 covers pool5 of a 224x224 image: 7 = 224 / 32
CAFFE_CONV1_1_PADDING = 100  # the reference release's conv1_1 "pad: 100"


class VGG16(FullyConnectedHead, nnx.Module):
    """VGG16 convolutions plus fc6 (7x7 conv) and fc7 (1x1 conv), each with ReLU and dropout."""

    def __init__(self, *, width: float = 1.0, fc_channels: int | None = None,
                 dropout_rate: float = 0.5, caffe: bool = False, fc6_kernel: int = FC6_KERNEL,
                 fast_paths: str = "auto", compute_dtype: str = "float32", rngs: nnx.Rngs):
        self.dropout_rate = dropout_rate
        self.kernels = backends.kernels(fast_paths)
        self.dtype = jnp.dtype(compute_dtype)
        blocks = []
        in_ch = 3
        for block, depth, channels in VGG16_BLOCKS:
            out_ch = scaled(channels, width)
            names = tuple(f"{block}_{i}" for i in range(1, depth + 1))
            for name in names:
                padding = CAFFE_CONV1_1_PADDING if caffe and name == "conv1_1" else "SAME"
                setattr(self, name, nnx.Conv(in_ch, out_ch, (3, 3), padding=padding,
                                             kernel_init=he_normal, dtype=self.dtype,
                                             conv_general_dilated=self.kernels.conv, rngs=rngs))
                in_ch = out_ch
            blocks.append(names)
        self.blocks = tuple(blocks)
        self.pool4_channels = scaled(VGG16_BLOCKS[3][2], width)
        self.pool3_channels = scaled(VGG16_BLOCKS[2][2], width)
        self.make_fc_layers(in_ch, fc_channels or scaled(FC_CHANNELS, width), fc6_kernel, caffe,
                            rngs)

    def geometry(self) -> tuple:
        """(kernel, stride) of each layer on the way to fc7, for ``layers.receptive_field``."""
        convs = [((3, 1),) * len(names) + ((2, 2),) for names in self.blocks]
        return sum(convs, ()) + ((self.fc6_kernel, 1), (1, 1))

    def conv_features(self, x: jax.Array) -> dict:
        """conv1..conv5 (each block's last activation) and pool1..pool5."""
        features = {}
        for level, names in enumerate(self.blocks, start=1):
            for name in names:
                x = jax.nn.relu(getattr(self, name)(x))
            features[f"conv{level}"] = x
            x = self.kernels.max_pool(x)  # 2x2, stride 2, ceil mode (Caffe's)
            features[f"pool{level}"] = x
        return features
