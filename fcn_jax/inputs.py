"""Input conventions: how uint8 RGB images become the nets' inputs (one home for each constant).

Images enter every model as uint8 (or float 0..255) NHWC RGB and are normalised on device:
- the default nets: ImageNet's per-channel RGB mean and std (``normalized``), as torchvision's
  VGG16 was trained;
- the reference release's layout (``model.caffe``): BGR with the Caffe VGG16 mean subtracted,
  no std division (``caffe_input``);
- padding (augmentation crops, evaluation to a multiple of the stride, tiles): ``PAD_RGB``,
  the RGB mean rounded, which the default normalisation takes to about zero.
Lives outside models/ and data/ because both use it (data/ never imports models).
"""

import jax
import jax.numpy as jnp
import numpy as np

RGB_MEAN = np.array([0.485, 0.456, 0.406], np.float32) * 255.0
RGB_STD = np.array([0.229, 0.224, 0.225], np.float32) * 255.0
BGR_MEAN = np.array([104.00699, 116.66877, 122.67892], np.float32)  # the release's, BGR
PAD_RGB = np.round(RGB_MEAN).astype(np.uint8)


def normalized(images: jax.Array, dtype=jnp.float32) -> jax.Array:
    """RGB 0..255 -> (x - mean) / std per channel, computed in float32, returned in ``dtype``."""
    return ((images.astype(jnp.float32) - RGB_MEAN) / RGB_STD).astype(dtype)


def caffe_input(images: jax.Array, dtype=jnp.float32) -> jax.Array:
    """RGB 0..255 -> BGR with the Caffe mean subtracted, in ``dtype``."""
    return (images.astype(jnp.float32)[..., ::-1] - BGR_MEAN).astype(dtype)
