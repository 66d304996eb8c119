"""The classifier the FCN starts from (FCN paper, sections 3.1 and 4.1; Table 1's backbones).

The paper fine-tunes from nets trained on ImageNet classification. ``Classifier`` is such a
net at a width multiplier, trained on the procedural objects (``data.objects``): a trunk of
``models.backbones`` in its classifier form, then fc8, the classifier layer the FCN discards.
VGG16 and AlexNet end with fc6 and fc7 as Linear layers on the flattened pool5 map (flattened
in (C, H, W) order as torch and Caffe do); GoogLeNet averages its last inception module over
the image. ``state_dict`` writes the net in torchvision's VGG16 / AlexNet layout (GoogLeNet:
the FCN's own layer names, see ``models.pretrained``), so it enters the FCN through the same
net surgery as torchvision's own weights (``models.pretrained.load_reference``: fc6 Linear ->
k x k convolution, fc7 -> 1x1, fc8 dropped).
"""

import jax
import numpy as np
from flax import nnx

from fcn_jax import inputs
from fcn_jax.models import backbones, pretrained
from fcn_jax.models.vgg import FC6_KERNEL, TRUNK_STRIDE


def input_size(fc6_kernel: int) -> int:
    """The image side whose pool5 map is exactly fc6's window: 224 for VGG16's 7x7."""
    return TRUNK_STRIDE * fc6_kernel


class Classifier(nnx.Module):
    """A ``backbone`` trunk in its classifier form, then fc8 (Linear)."""

    def __init__(self, num_classes: int, *, backbone: str = "vgg16", width: float = 1.0,
                 fc_channels: int | None = None, dropout_rate: float = 0.5,
                 fc6_kernel: int = FC6_KERNEL, fast_paths: str = "auto", rngs: nnx.Rngs):
        backbones.check(backbone)
        self.backbone = backbone
        self.trunk = backbones.build_trunk(backbone, width=width, fc_channels=fc_channels,
                                           dropout_rate=dropout_rate, fc6_kernel=fc6_kernel,
                                           fast_paths=fast_paths, compute_dtype="float32",
                                           rngs=rngs)
        self.trunk.to_linear(rngs)
        self.fc6_kernel = fc6_kernel
        self.fc8 = nnx.Linear(self.trunk.head_channels, num_classes,
                              kernel_init=nnx.initializers.normal(0.01), rngs=rngs)

    def __call__(self, images: jax.Array, *, dropout_keys: jax.Array | None = None) -> jax.Array:
        """uint8 NHWC images of side ``input_size(fc6_kernel)`` -> logits [B, num_classes]."""
        expected = input_size(self.fc6_kernel)
        if images.shape[1:3] != (expected, expected):
            raise ValueError(f"the classifier takes {expected}x{expected} images (fc6 covers a "
                             f"{self.fc6_kernel}x{self.fc6_kernel} pool5 map); got "
                             f"{images.shape[1]}x{images.shape[2]}")
        return self.fc8(self.trunk.classifier_vector(inputs.normalized(images), dropout_keys))


def file_names(model: Classifier) -> dict[str, str]:
    """{model layer name: file layer name}: torchvision's module names where the backbone has
    them (VGG16, AlexNet), else the model's own (reference) names."""
    layers = {name.rpartition(".")[0] for name in pretrained.model_variables(model)}
    torchvision = {v: k for k, v in pretrained.TORCHVISION_NAMES.get(model.backbone, {}).items()}
    return {layer: torchvision.get(layer, layer) for layer in sorted(layers)}


def state_dict(model: Classifier) -> dict[str, np.ndarray]:
    """The classifier as a state dict (``file_names``): convolutions OIHW, Linear [out, in]."""
    names = file_names(model)
    arrays = {}
    for name, variable in pretrained.model_variables(model).items():
        layer, _, leaf = name.rpartition(".")
        value = np.asarray(variable[...])
        if leaf == "weight":
            value = value.T if value.ndim == 2 else value.transpose(3, 2, 0, 1)
        arrays[f"{names[layer]}.{leaf}"] = np.ascontiguousarray(value)
    return arrays


def load_state_dict(model: Classifier, arrays: dict) -> None:
    """Load a state dict written by ``state_dict`` back into ``model`` (its inverse)."""
    expected = state_dict(model)
    missing = sorted(expected.keys() - arrays.keys())
    if missing:
        raise ValueError(f"not a {model.backbone} classifier state dict: {len(missing)} arrays "
                         f"missing ({', '.join(missing[:4])}{', ...' if len(missing) > 4 else ''})")
    for key, want in expected.items():
        got = np.asarray(arrays[key])
        if got.shape != want.shape:
            raise ValueError(f"{key} has shape {got.shape}; this classifier needs {want.shape} "
                             "(another backbone, width, fc size or fc6 kernel?)")
    names = file_names(model)
    for name, variable in pretrained.model_variables(model).items():
        layer, _, leaf = name.rpartition(".")
        value = np.asarray(arrays[f"{names[layer]}.{leaf}"])
        if leaf == "weight":
            value = value.T if value.ndim == 2 else value.transpose(2, 3, 1, 0)
        pretrained.assign(variable, value)
