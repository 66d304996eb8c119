"""The reference release's FCNs, layer for layer (FCN reference release, voc-fcn*/net.py).

``CaffeFCN`` is ``FCN``'s forward pass, layers and names, with the three hooks where the
layout the released Caffe weights expect differs (``config.model.caffe=True``):

- input: BGR, mean (104.00699, 116.66877, 122.67892) subtracted, 0..255 (no std division);
- trunk: conv1_1 padded by 100, ceil-mode pooling, VALID 7x7 fc6 (``VGG16(caffe=True)``);
- upsampling: transposed convolutions (kernel 2f, stride f) without the f/2 alignment crop;
  each skip score map is cropped to the upsampled map at the reference offset (score_pool4
  at 5, score_pool3 at 9) and the output at 19 (FCN-32s), 27 (FCN-16s) or 31 (FCN-8s);
- "at-once" FCN-8s: ``skip_scales=(0.01, 1e-4)`` scales pool4 and pool3 before scoring.
"""

import jax

from fcn_jax import inputs
from fcn_jax.models.decoders import DECODERS, is_transposed_conv
from fcn_jax.models.fcn import FCN
from fcn_jax.ops import upsample as up

SKIP_CROP_OFFSETS = {"score_pool4": 5, "score_pool3": 9}
OUTPUT_CROP_OFFSETS = {"fcn32s": 19, "fcn16s": 27, "fcn8s": 31}


class CaffeFCN(FCN):
    """FCN-32s/16s/8s with the reference release's padding, crops and input convention."""

    def __init__(self, num_classes: int, *, decoder: str = "bilinear", shift_stitch: int = 1,
                 **kwargs):
        if shift_stitch != 1:
            raise ValueError(f"model.shift_stitch={shift_stitch!r}: expected 1 with "
                             "model.caffe=True (the release's crops assume its own stride)")
        if not is_transposed_conv(decoder):
            choices = tuple(d for d in DECODERS if is_transposed_conv(d))
            raise ValueError(f"model.caffe=True needs a transposed-convolution decoder "
                             f"{choices}, got model.decoder={decoder!r}")
        super().__init__(num_classes, decoder=decoder, caffe_trunk=True, **kwargs)

    def model_input(self, images: jax.Array) -> jax.Array:
        """BGR with the Caffe mean subtracted (fcn_jax/inputs.py)."""
        return inputs.caffe_input(images, self.trunk.dtype)

    def fuse(self, coarse: jax.Array, upsample, name: str, skip: jax.Array,
             features: dict) -> jax.Array:
        """The reference fusion: the full transposed convolution of the coarse scores plus the
        skip scores cropped at the release's offset for ``name``."""
        upsampled = upsample.uncropped(coarse)
        return upsampled + up.crop(skip, SKIP_CROP_OFFSETS[name], upsampled.shape[1],
                                   upsampled.shape[2])

    def upsample_to(self, final, score: jax.Array, height: int, width: int,
                    features: dict) -> jax.Array:
        """The full final transposed convolution, cropped at the release's output offset."""
        return up.crop(final.uncropped(score), OUTPUT_CROP_OFFSETS[self.variant], height, width)
