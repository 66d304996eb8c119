"""The reference release's FCNs, layer for layer (FCN reference release, voc-fcn*/net.py).

``CaffeFCN`` has the layers and names of ``FCN`` in the layout the released Caffe weights
expect (``config.model.caffe=True``):

- input: BGR, mean (104.00699, 116.66877, 122.67892) subtracted, 0..255 (no std division);
- trunk: conv1_1 padded by 100, ceil-mode pooling, VALID 7x7 fc6 (``VGG16(caffe=True)``);
- upsampling: transposed convolutions (kernel 2f, stride f) without the f/2 alignment crop;
  each skip score map is cropped to the upsampled map at the reference offset (score_pool4
  at 5, score_pool3 at 9) and the output at 19 (FCN-32s), 27 (FCN-16s) or 31 (FCN-8s);
- "at-once" FCN-8s: ``skip_scales=(0.01, 1e-4)`` scales pool4 and pool3 before scoring.
"""

import jax
import jax.numpy as jnp

from fcn_jax import inputs
from fcn_jax.models.decoders import DECODERS, is_transposed_conv
from fcn_jax.models.fcn import FCN, FINAL_UPSAMPLING_NAMES
from fcn_jax.ops import upsample as up

SKIP_CROP_OFFSETS = {"score_pool4": 5, "score_pool3": 9}
OUTPUT_CROP_OFFSETS = {"fcn32s": 19, "fcn16s": 27, "fcn8s": 31}


class CaffeFCN(FCN):
    """FCN-32s/16s/8s with the reference release's padding, crops and input convention."""

    def __init__(self, num_classes: int, *, decoder: str = "bilinear", **kwargs):
        if not is_transposed_conv(decoder):
            choices = tuple(d for d in DECODERS if is_transposed_conv(d))
            raise ValueError(f"model.caffe=True needs a transposed-convolution decoder "
                             f"{choices}, got model.decoder={decoder!r}")
        super().__init__(num_classes, decoder=decoder, caffe_trunk=True, **kwargs)

    def __call__(self, images: jax.Array, *, dropout_keys: jax.Array | None = None) -> jax.Array:
        """uint8 (or float 0..255) RGB NHWC images -> float32 logits [B, H, W, num_classes]."""
        height, width = images.shape[1:3]
        features = self.trunk(inputs.caffe_input(images, self.trunk.dtype),
                              dropout_keys=dropout_keys)
        score = self.score_fr(features["fc7"])
        if self.stride <= 16:
            skip = self.score_pool4(features["pool4"] * self.pool4_scale)
            score = self.fuse_cropped(score, self.upscore2, skip, SKIP_CROP_OFFSETS["score_pool4"])
        if self.stride <= 8:
            skip = self.score_pool3(features["pool3"] * self.pool3_scale)
            score = self.fuse_cropped(score, self.upscore_pool4, skip,
                                      SKIP_CROP_OFFSETS["score_pool3"])
        final = getattr(self, FINAL_UPSAMPLING_NAMES[self.variant])
        return up.crop(final.uncropped(score), OUTPUT_CROP_OFFSETS[self.variant],
                       height, width).astype(jnp.float32)

    @staticmethod
    def fuse_cropped(coarse: jax.Array, upsample, skip: jax.Array, offset: int) -> jax.Array:
        """The reference fusion: upsampled coarse scores plus the skip cropped at ``offset``."""
        upsampled = upsample.uncropped(coarse)
        return upsampled + up.crop(skip, offset, upsampled.shape[1], upsampled.shape[2])
