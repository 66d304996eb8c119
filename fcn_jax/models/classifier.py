"""The VGG16 classifier the FCN starts from (FCN paper, sections 3.1 and 4.1).

The paper fine-tunes from VGG16 trained on ImageNet classification: the 13 convolutions, then
fc6 and fc7 as fully connected layers on the flattened pool5 map, each with ReLU and dropout,
and fc8, the 1000-way classifier. ``VGG16Classifier`` is that net at a width multiplier,
trained on the procedural objects (``data.objects``). Its pool5 map is flattened in (C, H, W)
order as torch and Caffe do, so ``to_torchvision`` writes a state dict in torchvision's VGG16
layout that enters the FCN through the same net surgery as torchvision's own weights
(``models.pretrained.load_reference``: fc6 Linear -> k x k convolution, fc7 -> 1x1, fc8 dropped).
"""

import jax
import numpy as np
from flax import nnx

from fcn_jax import inputs
from fcn_jax.models.vgg import FC6_KERNEL, TRUNK_STRIDE, VGG16, dropout, he_normal


def input_size(fc6_kernel: int) -> int:
    """The image side whose pool5 map is exactly fc6's window: 224 for VGG16's 7x7."""
    return TRUNK_STRIDE * fc6_kernel


class VGG16Classifier(nnx.Module):
    """VGG16's convolutions, then fc6, fc7 (Linear, ReLU, dropout) and fc8 (Linear)."""

    def __init__(self, num_classes: int, *, width: float = 1.0, fc_channels: int | None = None,
                 dropout_rate: float = 0.5, fc6_kernel: int = FC6_KERNEL,
                 fast_paths: str = "auto", rngs: nnx.Rngs):
        trunk = VGG16(width=width, fc_channels=fc_channels, dropout_rate=dropout_rate,
                      fc6_kernel=fc6_kernel, fast_paths=fast_paths, rngs=rngs)
        self.trunk = trunk
        self.fc6_kernel = fc6_kernel
        flat = trunk.pool5_channels * fc6_kernel * fc6_kernel
        # The trunk's fc6/fc7 are convolutions; the classifier's are Linear layers instead.
        trunk.fc6 = nnx.Linear(flat, trunk.fc_channels, kernel_init=he_normal, rngs=rngs)
        trunk.fc7 = nnx.Linear(trunk.fc_channels, trunk.fc_channels, kernel_init=he_normal,
                               rngs=rngs)
        self.fc8 = nnx.Linear(trunk.fc_channels, num_classes,
                              kernel_init=nnx.initializers.normal(0.01), rngs=rngs)

    def __call__(self, images: jax.Array, *, dropout_keys: jax.Array | None = None) -> jax.Array:
        """uint8 NHWC images of side ``input_size(fc6_kernel)`` -> logits [B, num_classes]."""
        expected = input_size(self.fc6_kernel)
        if images.shape[1:3] != (expected, expected):
            raise ValueError(f"the classifier takes {expected}x{expected} images (fc6 covers a "
                             f"{self.fc6_kernel}x{self.fc6_kernel} pool5 map); got "
                             f"{images.shape[1]}x{images.shape[2]}")
        x = inputs.normalized(images)
        pool5 = self.trunk.conv_features(x)["pool5"]
        flat = pool5.transpose(0, 3, 1, 2).reshape(pool5.shape[0], -1)  # torch's C, H, W order
        keys6 = keys7 = None
        if dropout_keys is not None:
            pairs = jax.vmap(jax.random.split)(dropout_keys)
            keys6, keys7 = pairs[:, 0], pairs[:, 1]
        rate = self.trunk.dropout_rate
        x = dropout(jax.nn.relu(self.trunk.fc6(flat)), rate, keys6)
        x = dropout(jax.nn.relu(self.trunk.fc7(x)), rate, keys7)
        return self.fc8(x)


def to_torchvision(model: VGG16Classifier, names: dict[str, str]) -> dict[str, np.ndarray]:
    """The classifier as a torchvision VGG16 state dict (``features.N``, ``classifier.N``).

    ``names``: torchvision module name -> reference layer name (``models.pretrained.TORCHVISION_VGG16``).
    Convolutions are written OIHW, Linear layers [out, in].
    """
    layers = {"fc8": model.fc8, "fc6": model.trunk.fc6, "fc7": model.trunk.fc7}
    arrays = {}
    for torch_name, layer_name in names.items():
        layer = layers.get(layer_name) or getattr(model.trunk, layer_name)
        kernel = np.asarray(layer.kernel[...])
        weight = kernel.T if kernel.ndim == 2 else kernel.transpose(3, 2, 0, 1)
        arrays[f"{torch_name}.weight"] = np.ascontiguousarray(weight)
        arrays[f"{torch_name}.bias"] = np.asarray(layer.bias[...])
    return arrays



def from_torchvision(model: VGG16Classifier, arrays: dict, names: dict[str, str]) -> None:
    """Load a state dict written by ``to_torchvision`` back into ``model`` (its inverse)."""
    expected = to_torchvision(model, names)
    missing = sorted(expected.keys() - arrays.keys())
    if missing:
        raise ValueError(f"not a VGG16 classifier state dict: {len(missing)} arrays missing "
                         f"({', '.join(missing[:4])}{', ...' if len(missing) > 4 else ''})")
    for key, want in expected.items():
        got = np.asarray(arrays[key])
        if got.shape != want.shape:
            raise ValueError(f"{key} has shape {got.shape}; this classifier needs {want.shape} "
                             "(another width, fc size or fc6 kernel?)")
    layers = {"fc8": model.fc8, "fc6": model.trunk.fc6, "fc7": model.trunk.fc7}
    for torch_name, layer_name in names.items():
        layer = layers.get(layer_name) or getattr(model.trunk, layer_name)
        weight = np.asarray(arrays[f"{torch_name}.weight"])
        layer.kernel[...] = weight.T if weight.ndim == 2 else weight.transpose(2, 3, 1, 0)
        layer.bias[...] = np.asarray(arrays[f"{torch_name}.bias"])
