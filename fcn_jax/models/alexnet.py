"""AlexNet trunk with convolutionalized fc6/fc7 (FCN paper, section 3.1 and Table 1).

Five convolutions (11x11 stride 4, 5x5, then three 3x3; torchvision's single-tower channel
counts 64, 192, 384, 256, 256 at width 1.0), 3x3 stride-2 max pooling after conv1, conv2 and
conv5, then fc6 (a ``fc6_kernel`` square convolution, 6 for torchvision's 224x224 crops) and
fc7 (1x1), each with ReLU and dropout: FCN-AlexNet's trunk, stride 32. Padding is "SAME" and
pooling rounds up, so pool5 of an H-pixel input has ceil(H / 32) cells, as VGG16's does.
No local response normalisation (torchvision's AlexNet has none either).
"""

import jax
import jax.numpy as jnp
from flax import nnx

from fcn_jax import backends
from fcn_jax.models.fully_connected import FullyConnectedHead
from fcn_jax.models.layers import add_conv_chain, chain_geometry, run_conv_chain, scaled

# (name, kernel, stride, channels at width 1.0, pooled after)
ALEXNET_CONVS = (("conv1", 11, 4, 64, True), ("conv2", 5, 1, 192, True),
                 ("conv3", 3, 1, 384, False), ("conv4", 3, 1, 256, False),
                 ("conv5", 3, 1, 256, True))
FC_CHANNELS = 4096
FC6_KERNEL = 6  # torchvision's AlexNet: fc6 reads a 256 x 6 x 6 pool5 map


class AlexNet(FullyConnectedHead, nnx.Module):
    """AlexNet's convolutions plus fc6 and fc7 as convolutions, each with ReLU and dropout."""

    def __init__(self, *, width: float = 1.0, fc_channels: int | None = None,
                 dropout_rate: float = 0.5, fc6_kernel: int = FC6_KERNEL,
                 fast_paths: str = "auto", compute_dtype: str = "float32", rngs: nnx.Rngs):
        self.dropout_rate = dropout_rate
        self.kernels = backends.kernels(fast_paths)
        self.dtype = jnp.dtype(compute_dtype)
        in_ch = add_conv_chain(self, ALEXNET_CONVS, 3, width, rngs=rngs)
        self.make_fc_layers(in_ch, fc_channels or scaled(FC_CHANNELS, width), fc6_kernel, False,
                            rngs)

    def geometry(self) -> tuple:
        """(kernel, stride) of each layer on the way to fc7, for ``layers.receptive_field``."""
        return chain_geometry(ALEXNET_CONVS) + ((self.fc6_kernel, 1), (1, 1))

    def conv_features(self, x: jax.Array) -> dict:
        """conv1..conv5 and pool5 (stride 32)."""
        features = {}
        features["pool5"] = run_conv_chain(self, ALEXNET_CONVS, x, features)
        return features
