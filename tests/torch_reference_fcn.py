"""The reference release's FCNs and torchvision's VGG16 as torch modules (tests only; needs torch).

``ReferenceFCN`` is written from the release's voc-fcn*/net.py, as the PyTorch port
wkentaro/pytorch-fcn does it: layer names are the release's, so its state_dict is in the
reference layout. Input: BGR mean-subtracted float NCHW. ``TorchvisionVGG16`` has torchvision's
``features`` / ``classifier`` module indices and flattens pool5 (C, H, W) into fc6.
"""

import torch
from torch import nn

VGG16_DEPTHS = (2, 2, 3, 3, 3)


def vgg_channels(width_channels: tuple[int, ...]) -> list[tuple[str, int, int]]:
    """[(name, in, out)] of the 13 convolutions for per-block channel counts."""
    layers, cin = [], 3
    for block, (depth, cout) in enumerate(zip(VGG16_DEPTHS, width_channels), start=1):
        for i in range(1, depth + 1):
            layers.append((f"conv{block}_{i}", cin, cout))
            cin = cout
    return layers


class ReferenceFCN(nn.Module):
    """FCN-32s / 16s / 8s of the reference release (pad 100, ceil pooling, crops 5/9/19/27/31)."""

    def __init__(self, variant: str, channels: tuple[int, ...], fc: int, num_classes: int,
                 skip_scales=(1.0, 1.0)):
        super().__init__()
        self.variant, self.skip_scales = variant, skip_scales
        self.convs = vgg_channels(channels)
        for name, cin, cout in self.convs:
            setattr(self, name, nn.Conv2d(cin, cout, 3, padding=100 if name == "conv1_1" else 1))
        self.fc6 = nn.Conv2d(channels[4], fc, 7)
        self.fc7 = nn.Conv2d(fc, fc, 1)
        self.score_fr = nn.Conv2d(fc, num_classes, 1)
        stride = {"fcn32s": 32, "fcn16s": 16, "fcn8s": 8}[variant]
        if stride <= 16:
            self.score_pool4 = nn.Conv2d(channels[3], num_classes, 1)
            self.upscore2 = nn.ConvTranspose2d(num_classes, num_classes, 4, 2, bias=False)
        if stride <= 8:
            self.score_pool3 = nn.Conv2d(channels[2], num_classes, 1)
            self.upscore_pool4 = nn.ConvTranspose2d(num_classes, num_classes, 4, 2, bias=False)
        self.final = {"fcn32s": "upscore", "fcn16s": "upscore16", "fcn8s": "upscore8"}[variant]
        setattr(self, self.final,
                nn.ConvTranspose2d(num_classes, num_classes, 2 * stride, stride, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, pools = x, []
        for name, _, _ in self.convs:
            h = torch.relu(getattr(self, name)(h))
            if name.endswith(("1_2", "2_2", "3_3", "4_3", "5_3")):
                h = nn.functional.max_pool2d(h, 2, 2, ceil_mode=True)
                pools.append(h)
        h = self.score_fr(torch.relu(self.fc7(torch.relu(self.fc6(h)))))
        if self.variant in ("fcn16s", "fcn8s"):
            h = self.upscore2(h)
            skip = self.score_pool4(pools[3] * self.skip_scales[0])
            h = h + skip[:, :, 5:5 + h.shape[2], 5:5 + h.shape[3]]
        if self.variant == "fcn8s":
            h = self.upscore_pool4(h)
            skip = self.score_pool3(pools[2] * self.skip_scales[1])
            h = h + skip[:, :, 9:9 + h.shape[2], 9:9 + h.shape[3]]
        offset = {"fcn32s": 19, "fcn16s": 27, "fcn8s": 31}[self.variant]
        h = getattr(self, self.final)(h)
        return h[:, :, offset:offset + x.shape[2], offset:offset + x.shape[3]]


class TorchvisionVGG16(nn.Module):
    """torchvision.models.vgg16's module layout (features, classifier) at a channel width."""

    def __init__(self, channels: tuple[int, ...], fc: int):
        super().__init__()
        layers, cin = [], 3
        for depth, cout in zip(VGG16_DEPTHS, channels):
            for _ in range(depth):
                layers += [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU()]
                cin = cout
            layers.append(nn.MaxPool2d(2, 2))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Linear(cin * 7 * 7, fc), nn.ReLU(), nn.Dropout(),
                                        nn.Linear(fc, fc), nn.ReLU(), nn.Dropout(),
                                        nn.Linear(fc, 1000))

    def fc7(self, x: torch.Tensor) -> torch.Tensor:
        """fc7 activations of a 224x224 RGB input normalised with the ImageNet mean and std."""
        return self.classifier[:5](torch.flatten(self.features(x), 1))
