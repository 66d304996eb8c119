"""GoogLeNet trunk (FCN paper, section 3.1 and Table 1; Szegedy et al. 2015).

The stem (7x7 stride-2 convolution, 3x3 stride-2 max pool, 1x1 and 3x3 convolutions, max
pool), then nine inception modules (3a, 3b | 4a..4e | 5a, 5b) with 3x3 stride-2 max pools
between the groups: stride 32, the channel counts of the original at width 1.0. As the paper's
FCN-GoogLeNet does, the FCN keeps only the final classifier's path and discards the final
average pooling: score_fr reads inception5b (with dropout) directly, so nothing fully
connected remains to convolutionalize. The classifier it starts from (``models.classifier``)
averages inception5b over the image, applies dropout and its Linear fc8. No auxiliary
classifiers and no local response normalisation (the FCN discards the former; neither is
needed to train at this scale). Padding is "SAME" and pooling rounds up, so the final map of
an H-pixel input has ceil(H / 32) cells.
"""

import jax
import jax.numpy as jnp
from flax import nnx

from fcn_jax import backends
from fcn_jax.models.layers import (add_conv_chain, chain_geometry, dropout, he_normal,
                                   run_conv_chain, scaled)
from fcn_jax.ops.pool import overlapping_max_pool

# The stem: (name, kernel, stride, channels at width 1.0, pooled after).
STEM = (("conv1", 7, 2, 64, True), ("conv2", 1, 1, 64, False), ("conv3", 3, 1, 192, True))
# Inception modules: (name, 1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool projection, pooled
# after), the original's channel counts.
INCEPTIONS = (("inception3a", 64, 96, 128, 16, 32, 32, False),
              ("inception3b", 128, 128, 192, 32, 96, 64, True),
              ("inception4a", 192, 96, 208, 16, 48, 64, False),
              ("inception4b", 160, 112, 224, 24, 64, 64, False),
              ("inception4c", 128, 128, 256, 24, 64, 64, False),
              ("inception4d", 112, 144, 288, 32, 64, 64, False),
              ("inception4e", 256, 160, 320, 32, 128, 128, True),
              ("inception5a", 256, 160, 320, 32, 128, 128, False),
              ("inception5b", 384, 192, 384, 48, 128, 128, False))
AVERAGE_POOL = 7  # the classifier's final average pool over a 224x224 input's 7x7 map


class Inception(nnx.Module):
    """Four parallel branches concatenated: 1x1; 1x1 -> 3x3; 1x1 -> 5x5; 3x3 max pool -> 1x1."""

    def __init__(self, in_ch: int, widths: tuple, *, kernels, dtype, rngs: nnx.Rngs):
        b1, b2_reduce, b2, b3_reduce, b3, b4 = widths

        def conv(cin: int, cout: int, size: int) -> nnx.Conv:
            return nnx.Conv(cin, cout, (size, size), padding="SAME", kernel_init=he_normal,
                            dtype=dtype, conv_general_dilated=kernels.conv, rngs=rngs)
        self.branch1 = conv(in_ch, b1, 1)
        self.branch2_reduce, self.branch2 = conv(in_ch, b2_reduce, 1), conv(b2_reduce, b2, 3)
        self.branch3_reduce, self.branch3 = conv(in_ch, b3_reduce, 1), conv(b3_reduce, b3, 5)
        self.branch4 = conv(in_ch, b4, 1)
        self.out_channels = b1 + b2 + b3 + b4

    def __call__(self, x: jax.Array) -> jax.Array:
        relu = jax.nn.relu
        return jnp.concatenate([
            relu(self.branch1(x)),
            relu(self.branch2(relu(self.branch2_reduce(x)))),
            relu(self.branch3(relu(self.branch3_reduce(x)))),
            relu(self.branch4(overlapping_max_pool(x, 1)))], axis=-1)


class GoogLeNet(nnx.Module):
    """GoogLeNet's stem and inception modules; score_fr reads inception5b."""

    head_feature = "inception5b"

    def __init__(self, *, width: float = 1.0, dropout_rate: float = 0.4,
                 fast_paths: str = "auto", compute_dtype: str = "float32", rngs: nnx.Rngs):
        self.dropout_rate = dropout_rate
        self.kernels = backends.kernels(fast_paths)
        self.dtype = jnp.dtype(compute_dtype)
        in_ch = add_conv_chain(self, STEM, 3, width, rngs=rngs)
        for name, *widths, _ in INCEPTIONS:
            module = Inception(in_ch, tuple(scaled(c, width) for c in widths),
                               kernels=self.kernels, dtype=self.dtype, rngs=rngs)
            setattr(self, name, module)
            in_ch = module.out_channels
        self.head_channels = in_ch

    def geometry(self) -> tuple:
        """(kernel, stride) of each layer on the longest path to inception5b (each module's
        5x5 branch), for ``layers.receptive_field``."""
        layers = list(chain_geometry(STEM))
        for *_, pooled in INCEPTIONS:
            layers += [(1, 1), (5, 1)] + [(3, 2)] * pooled
        return tuple(layers)

    def conv_features(self, x: jax.Array) -> dict:
        """The stem's convolutions and every inception module's output (no dropout)."""
        features = {}
        x = run_conv_chain(self, STEM, x, features)
        for name, *_, pooled in INCEPTIONS:
            x = features[name] = getattr(self, name)(x)
            if pooled:
                x = overlapping_max_pool(x, 2)
        return features

    def __call__(self, x: jax.Array, *, dropout_keys: jax.Array | None = None) -> dict:
        """``conv_features`` with dropout on inception5b, the features score_fr reads."""
        features = self.conv_features(x)
        features[self.head_feature] = dropout(features[self.head_feature], self.dropout_rate,
                                              dropout_keys)
        return features

    def to_linear(self, rngs: nnx.Rngs) -> None:
        """The classifier's form: nothing to change (it has no fully connected layers)."""

    def classifier_vector(self, x: jax.Array, dropout_keys: jax.Array | None) -> jax.Array:
        """The classifier's input to fc8: inception5b averaged over the image, then dropout."""
        pooled = self.conv_features(x)[self.head_feature].mean(axis=(1, 2))
        return dropout(pooled, self.dropout_rate, dropout_keys)
