"""Sliding-window patch classification and its convolutionalization (FCN paper, section 3.1).

A patch classifier labels the centre pixel of a ``patch_size`` window with a small VGG-style
trunk (unpadded 3x3 convolutions, 2x2 max pooling) and fully connected layers. Because the
trunk uses no padding, the same weights can be run once over a whole image: the first fully
connected layer becomes a convolution whose kernel covers the trunk's final map, the others
become 1x1 convolutions. The dense output at (i, j) is then exactly the classifier's output for
the window whose top-left corner is (i * stride, j * stride), which is what "naive" inference
computes by cutting out every window.
"""

import jax
import jax.numpy as jnp
from flax import nnx

from fcn_jax import inputs
from fcn_jax.models.layers import he_normal


class PatchClassifier(nnx.Module):
    """Two blocks of two unpadded 3x3 convs + pool, then two fully connected layers."""

    def __init__(self, num_classes: int, *, patch_size: int = 32, channels: int = 16,
                 hidden: int = 64, rngs: nnx.Rngs):
        size = patch_size
        for _ in range(2):  # two blocks: conv, conv (each -2 pixels), pool (/2)
            size = (size - 4) // 2
        if size < 1:
            raise ValueError(f"patch_size={patch_size} is too small for the trunk (min 14)")
        self.patch_size = patch_size
        self.feature_size = size

        def conv(in_ch: int, out_ch: int) -> nnx.Conv:
            return nnx.Conv(in_ch, out_ch, (3, 3), padding="VALID", kernel_init=he_normal,
                            rngs=rngs)

        wide = 2 * channels
        self.conv1_1, self.conv1_2 = conv(3, channels), conv(channels, channels)
        self.conv2_1, self.conv2_2 = conv(channels, wide), conv(wide, wide)
        self.fc1 = nnx.Linear(size * size * wide, hidden, kernel_init=he_normal, rngs=rngs)
        self.fc2 = nnx.Linear(hidden, num_classes, rngs=rngs)

    @property
    def stride(self) -> int:
        """Pixels between neighbouring dense outputs (the trunk's total pooling stride)."""
        return 4

    def features(self, images: jax.Array) -> jax.Array:
        """The convolutional trunk on uint8 images of any size (no padding anywhere)."""
        x = inputs.normalized(images)
        for first, second in ((self.conv1_1, self.conv1_2), (self.conv2_1, self.conv2_2)):
            x = jax.nn.relu(second(jax.nn.relu(first(x))))
            x = nnx.max_pool(x, (2, 2), strides=(2, 2), padding="VALID")
        return x

    def __call__(self, patches: jax.Array) -> jax.Array:
        """Class scores [N, C] for the centre pixels of [N, patch, patch, 3] windows."""
        x = self.features(patches).reshape(patches.shape[0], -1)
        return self.fc2(jax.nn.relu(self.fc1(x)))

    def dense(self, images: jax.Array) -> jax.Array:
        """The convolutionalized net on whole images: scores [B, H', W', C] at every window."""
        x = self.features(images)
        fc1 = self.fc1.kernel[...].reshape(self.feature_size, self.feature_size, x.shape[-1], -1)
        x = jax.lax.conv_general_dilated(x, fc1, (1, 1), "VALID",
                                         dimension_numbers=("NHWC", "HWIO", "NHWC"))
        x = jax.nn.relu(x + self.fc1.bias[...])
        return x @ self.fc2.kernel[...] + self.fc2.bias[...]


def window_grid(height: int, width: int, patch_size: int, stride: int) -> tuple[int, int]:
    """How many windows fit vertically and horizontally at ``stride``."""
    return (height - patch_size) // stride + 1, (width - patch_size) // stride + 1


def naive_sliding_window(model: PatchClassifier, images: jax.Array,
                         batch_size: int = 256) -> jax.Array:
    """Cut out every window at the model's stride and classify them as separate crops,
    ``batch_size`` crops at a time (the last batch padded with repeats)."""
    p, s = model.patch_size, model.stride
    n, height, width, channels = images.shape
    rows, cols = window_grid(height, width, p, s)
    origins = s * jnp.stack(jnp.meshgrid(jnp.arange(rows), jnp.arange(cols), indexing="ij"),
                            -1).reshape(-1, 2)
    index = jnp.stack(jnp.meshgrid(jnp.arange(n), jnp.arange(rows * cols), indexing="ij"),
                      -1).reshape(-1, 2)
    total = index.shape[0]
    index = jnp.concatenate([index, jnp.repeat(index[-1:], -total % batch_size, axis=0)])

    def crop(i):
        top, left = origins[i[1]]
        return jax.lax.dynamic_slice(images[i[0]], (top, left, 0), (p, p, channels))

    def classify(batch_index):
        return model(jax.vmap(crop)(batch_index))

    scores = jax.lax.map(classify, index.reshape(-1, batch_size, 2))
    return scores.reshape(-1, scores.shape[-1])[:total].reshape(n, rows, cols, -1)
