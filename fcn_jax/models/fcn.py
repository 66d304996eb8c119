"""FCN-32s, FCN-16s and FCN-8s heads on the VGG16 trunk (FCN paper, sections 3.3 and 4.2).

score_fr (1x1 conv on fc7) predicts at stride 32. FCN-16s adds a 2x upsampled score_fr to
score_pool4 (1x1 conv on pool4); FCN-8s adds that sum, upsampled 2x, to score_pool3. The result
is upsampled to the input by a transposed convolution (kernel 2f, stride f, bilinear init, one
filter per class) and cropped so every input size gives logits of exactly that size. Score
layers start at zero. "At-once" training scales pool4 by 0.01 and pool3 by 1e-4.
"""

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from fcn_jax.models.vgg import VGG16
from fcn_jax.ops import upsample as up

VARIANT_STRIDES = {"fcn32s": 32, "fcn16s": 16, "fcn8s": 8}
# The reference release's name for the final upsampling layer of each variant.
FINAL_UPSAMPLING_NAMES = {"fcn32s": "upscore", "fcn16s": "upscore16", "fcn8s": "upscore8"}
# Per-channel RGB mean and std (ImageNet) used to normalise uint8 images on device.
RGB_MEAN = np.array([0.485, 0.456, 0.406], np.float32) * 255.0
RGB_STD = np.array([0.229, 0.224, 0.225], np.float32) * 255.0


class FixedKernel(nnx.Variable):
    """A weight that is part of the model but never trained (not an nnx.Param)."""


class BilinearConvTranspose(nnx.Module):
    """Per-class transposed convolution, kernel 2f, stride f, no bias, bilinear init.

    ``learnable=False`` keeps the kernel fixed (the reference release's choice); True makes it
    an nnx.Param (the paper learned its 2x layers).
    """

    def __init__(self, channels: int, factor: int, *, learnable: bool):
        kernel = jnp.asarray(up.bilinear_kernel(factor, channels))
        self.factor = factor
        self.kernel = nnx.Param(kernel) if learnable else FixedKernel(kernel)

    def __call__(self, x: jax.Array, height: int, width: int) -> jax.Array:
        """Upsample by f and crop to ``height`` x ``width``, aligned with the input's pixels."""
        upsample = (up.transposed_conv if isinstance(self.kernel, nnx.Param)
                    else up.per_class_transposed_conv)  # a fixed kernel is diagonal
        y = upsample(x, self.kernel[...], self.factor)
        return up.crop(y, up.upsample_crop_offset(self.factor), height, width)


def score_layer(in_channels: int, num_classes: int, rngs: nnx.Rngs) -> nnx.Conv:
    """A zero-initialised 1x1 classifier (score_fr, score_pool4, score_pool3)."""
    return nnx.Conv(in_channels, num_classes, (1, 1), kernel_init=nnx.initializers.zeros,
                    bias_init=nnx.initializers.zeros, rngs=rngs)


class FCN(nnx.Module):
    """An FCN with skip fusion: variant "fcn32s", "fcn16s" or "fcn8s"."""

    def __init__(self, num_classes: int, *, variant: str = "fcn8s", width: float = 1.0,
                 fc_channels: int | None = None, dropout_rate: float = 0.5,
                 learn_upsampling: bool = False, skip_scales: tuple = (1.0, 1.0),
                 rngs: nnx.Rngs):
        if variant not in VARIANT_STRIDES:
            raise ValueError(f"model.variant={variant!r}: expected one of "
                             f"{sorted(VARIANT_STRIDES)}")
        self.variant = variant
        self.num_classes = num_classes
        self.pool4_scale, self.pool3_scale = (float(s) for s in skip_scales)
        self.trunk = VGG16(width=width, fc_channels=fc_channels, dropout_rate=dropout_rate,
                           rngs=rngs)
        self.score_fr = score_layer(self.trunk.fc_channels, num_classes, rngs)
        stride = VARIANT_STRIDES[variant]
        if stride <= 16:
            self.score_pool4 = score_layer(self.trunk.pool4_channels, num_classes, rngs)
            self.upscore2 = BilinearConvTranspose(num_classes, 2, learnable=learn_upsampling)
        if stride <= 8:
            self.score_pool3 = score_layer(self.trunk.pool3_channels, num_classes, rngs)
            self.upscore_pool4 = BilinearConvTranspose(num_classes, 2,
                                                       learnable=learn_upsampling)
        setattr(self, FINAL_UPSAMPLING_NAMES[variant],
                BilinearConvTranspose(num_classes, stride, learnable=learn_upsampling))

    @property
    def stride(self) -> int:
        """The output stride before the final upsampling (32, 16 or 8)."""
        return VARIANT_STRIDES[self.variant]

    def __call__(self, images: jax.Array, *, dropout_keys: jax.Array | None = None) -> jax.Array:
        """uint8 (or float 0..255) NHWC images -> float32 logits [B, H, W, num_classes]."""
        height, width = images.shape[1:3]
        x = (images.astype(jnp.float32) - RGB_MEAN) / RGB_STD
        features = self.trunk(x, dropout_keys=dropout_keys)
        score = self.score_fr(features["fc7"])
        if self.stride <= 16:
            score = self.fuse(score, self.upscore2, self.score_pool4,
                              features["pool4"] * self.pool4_scale)
        if self.stride <= 8:
            score = self.fuse(score, self.upscore_pool4, self.score_pool3,
                              features["pool3"] * self.pool3_scale)
        return getattr(self, FINAL_UPSAMPLING_NAMES[self.variant])(score, height, width)

    @staticmethod
    def fuse(coarse: jax.Array, upsample: BilinearConvTranspose, score: nnx.Conv,
             pool: jax.Array) -> jax.Array:
        """Skip fusion: 2x upsampled coarse scores plus scores of a finer pooling layer."""
        skip = score(pool)
        return upsample(coarse, skip.shape[1], skip.shape[2]) + skip
