"""fc6 and fc7, the fully connected layers VGG16 and AlexNet end with, convolutionalized
(FCN paper, section 3.1).

In the FCN fc6 is a k x k convolution over pool5 (k: the pool5 size of the classifier's input,
``fc6_kernel``) and fc7 a 1x1 convolution, each with ReLU and dropout, so the classifier slides
over inputs of any size. The classifier the FCN starts from (``models.classifier``) calls
``to_linear`` to make them Linear layers on the flattened pool5 map, flattened in (C, H, W)
order as torch and Caffe do, which is what makes the weight importer's reshape exact.
"""

import jax
from flax import nnx

from fcn_jax.models.layers import dropout, he_normal, split_keys


class FullyConnectedHead:
    """Mixin for a trunk whose ``conv_features`` end in "pool5": its fc6 and fc7."""

    head_feature = "fc7"  # the features score_fr reads

    def make_fc_layers(self, in_channels: int, fc_channels: int, fc6_kernel: int, caffe: bool,
                       rngs: nnx.Rngs) -> None:
        """fc6 (``fc6_kernel`` square, VALID in the reference release's layout) and fc7."""
        self.pool5_channels = in_channels
        self.fc6_kernel = fc6_kernel
        self.fc_channels = self.head_channels = fc_channels
        self.fc6 = nnx.Conv(in_channels, fc_channels, (fc6_kernel, fc6_kernel),
                            padding="VALID" if caffe else "SAME", kernel_init=he_normal,
                            dtype=self.dtype, conv_general_dilated=self.kernels.conv, rngs=rngs)
        self.fc7 = nnx.Conv(fc_channels, fc_channels, (1, 1), kernel_init=he_normal,
                            dtype=self.dtype, conv_general_dilated=self.kernels.conv, rngs=rngs)

    def __call__(self, x: jax.Array, *, dropout_keys: jax.Array | None = None) -> dict:
        """``conv_features`` plus "fc7" (stride 32), the features score_fr reads.

        ``dropout_keys``: one PRNG key per example ([B]); None disables dropout (inference).
        """
        features = self.conv_features(x)
        features["fc7"] = self.fully_connected(features["pool5"], dropout_keys)
        return features

    def fully_connected(self, x: jax.Array, dropout_keys: jax.Array | None) -> jax.Array:
        """fc6 and fc7, each followed by ReLU and dropout."""
        keys6, keys7 = split_keys(dropout_keys, 2)
        x = dropout(jax.nn.relu(self.fc6(x)), self.dropout_rate, keys6)
        return dropout(jax.nn.relu(self.fc7(x)), self.dropout_rate, keys7)

    def to_linear(self, rngs: nnx.Rngs) -> None:
        """The classifier's form: fc6 and fc7 as Linear layers (fc6 on the flat pool5 map)."""
        flat = self.pool5_channels * self.fc6_kernel ** 2
        self.fc6 = nnx.Linear(flat, self.fc_channels, kernel_init=he_normal, rngs=rngs)
        self.fc7 = nnx.Linear(self.fc_channels, self.fc_channels, kernel_init=he_normal,
                              rngs=rngs)

    def classifier_vector(self, x: jax.Array, dropout_keys: jax.Array | None) -> jax.Array:
        """The classifier's fc7 ([B, fc_channels]) of a model input whose pool5 is fc6's size."""
        pool5 = self.conv_features(x)["pool5"]
        flat = pool5.transpose(0, 3, 1, 2).reshape(pool5.shape[0], -1)  # torch's C, H, W order
        return self.fully_connected(flat, dropout_keys)
