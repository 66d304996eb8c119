"""The same FCN in PyTorch, for side-by-side speed comparisons (benchmarks only).

Layer for layer the network of ``fcn_jax.models.fcn.FCN``: VGG16 at a width multiplier with
"same" 3x3 convolutions and ceil-mode pooling, fc6 as 7x7 and fc7 as 1x1 convolutions with
dropout, zero-initialised score layers, fixed bilinear transposed convolutions (kernel 2f,
stride f, one filter per class: a grouped transposed convolution, torch's counterpart of the
JAX model's per-class upsampling) and the same f/2 crops. Channels-last input uint8 [B,H,W,3],
logits [B,C,H,W].
"""

import numpy as np
import torch
from torch import nn

from fcn_jax.inputs import RGB_MEAN, RGB_STD
from fcn_jax.models.fcn import VARIANT_STRIDES
from fcn_jax.models.layers import scaled
from fcn_jax.models.vgg import FC_CHANNELS, VGG16_BLOCKS
from fcn_jax.ops.upsample import bilinear_kernel


class TorchFCN(nn.Module):
    """FCN-32s/16s/8s in torch, matching the JAX model's architecture and arithmetic."""

    def __init__(self, num_classes: int, variant: str = "fcn8s", width: float = 1.0,
                 dropout_rate: float = 0.5):
        super().__init__()
        self.stride = VARIANT_STRIDES[variant]
        self.blocks = nn.ModuleList()
        in_ch, channels = 3, []
        for _, depth, ch in VGG16_BLOCKS:
            out_ch = scaled(ch, width)
            layers = []
            for _ in range(depth):
                layers += [nn.Conv2d(in_ch, out_ch, 3, padding=1), nn.ReLU(inplace=True)]
                in_ch = out_ch
            layers.append(nn.MaxPool2d(2, 2, ceil_mode=True))
            self.blocks.append(nn.Sequential(*layers))
            channels.append(out_ch)
        fc = scaled(FC_CHANNELS, width)
        self.fc = nn.Sequential(nn.Conv2d(in_ch, fc, 7, padding=3), nn.ReLU(inplace=True),
                                nn.Dropout(dropout_rate),
                                nn.Conv2d(fc, fc, 1), nn.ReLU(inplace=True),
                                nn.Dropout(dropout_rate))
        self.score_fr = zero_conv(fc, num_classes)
        self.score_pool4 = zero_conv(channels[3], num_classes) if self.stride <= 16 else None
        self.score_pool3 = zero_conv(channels[2], num_classes) if self.stride <= 8 else None
        self.register_buffer("up2", bilinear_weight(2, num_classes))
        self.register_buffer("up_final", bilinear_weight(self.stride, num_classes))
        self.register_buffer("mean", torch.tensor(RGB_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(RGB_STD).view(1, 3, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        height, width = images.shape[1:3]
        x = (images.permute(0, 3, 1, 2).float() - self.mean) / self.std
        pools = []
        for block in self.blocks:
            x = block(x)
            pools.append(x)
        score = self.score_fr(self.fc(x))
        for pool, layer in ((pools[3], self.score_pool4), (pools[2], self.score_pool3)):
            if layer is not None:
                skip = layer(pool)
                score = upsample(score, self.up2, 2, skip.shape[2], skip.shape[3]) + skip
        return upsample(score, self.up_final, self.stride, height, width)


def zero_conv(in_ch: int, out_ch: int) -> nn.Conv2d:
    conv = nn.Conv2d(in_ch, out_ch, 1)
    nn.init.zeros_(conv.weight)
    nn.init.zeros_(conv.bias)
    return conv


def bilinear_weight(factor: int, channels: int) -> torch.Tensor:
    """The per-class filters of the JAX model's bilinear kernel, [C, 1, kH, kW] (symmetric)."""
    kernel = bilinear_kernel(factor, channels)
    diagonal = np.arange(channels)
    return torch.from_numpy(np.ascontiguousarray(
        kernel[:, :, diagonal, diagonal].transpose(2, 0, 1)[:, None]))


def upsample(x: torch.Tensor, weight: torch.Tensor, factor: int, height: int,
             width: int) -> torch.Tensor:
    """Per-class transposed convolution (kernel 2f, stride f) and the aligning crop of f/2."""
    y = nn.functional.conv_transpose2d(x, weight, stride=factor, groups=weight.shape[0])
    offset = factor // 2
    return y[:, :, offset:offset + height, offset:offset + width]
