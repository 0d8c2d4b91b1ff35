"""VGG baselines (Simonyan & Zisserman 2015) as torchvision builds them, plus a CIFAR head.

The ImageNet variants match torchvision's module layout and parameter counts exactly, so its
state dicts load unchanged.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from zoo.interface import ClassifierInterface
from zoo.resnet import FAMILIES, INPUT_SIZES

# Conv widths per configuration, "M" = 2x2 max-pool (the paper's configurations A, B, D, E).
CONFIGS: dict[int, list[int | str]] = {
    11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    13: [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    19: [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}


def make_layers(config: list[int | str], batch_norm: bool, in_chans: int = 3) -> nn.Sequential:
    layers: list[nn.Module] = []
    channels = in_chans
    for item in config:
        if item == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            continue
        assert isinstance(item, int)
        layers.append(nn.Conv2d(channels, item, kernel_size=3, padding=1))
        if batch_norm:
            layers.append(nn.BatchNorm2d(item))
        layers.append(nn.ReLU(inplace=True))
        channels = item
    return nn.Sequential(*layers)


class VGG(ClassifierInterface, nn.Module):
    """VGG-11/13/16/19, with or without BN.

    ImageNet head: torchvision's 7x7 adaptive pool + 4096-4096 FC with dropout. CIFAR head: the
    five pools leave 1x1 maps on a 32x32 input, so one 512 -> classes FC (a common CIFAR VGG).
    """

    def __init__(
        self,
        *,
        depth: int = 16,
        batch_norm: bool = False,
        family: str = "imagenet",
        num_classes: int = 1000,
        in_chans: int = 3,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        if depth not in CONFIGS:
            raise ValueError(f"VGG depth {depth} unknown; valid: {', '.join(map(str, CONFIGS))}")
        if family not in FAMILIES:
            raise ValueError(f"unknown family {family!r}; valid: {', '.join(FAMILIES)}")
        if num_classes < 1:
            raise ValueError(f"num_classes must be positive, got {num_classes}")
        self.family = family
        self.default_input_size = INPUT_SIZES[family]
        self.in_chans = in_chans
        self.num_classes = num_classes
        self.depth = depth
        self.batch_norm = batch_norm
        self.features = make_layers(CONFIGS[depth], batch_norm, in_chans)
        if family == "imagenet":
            self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
            self.classifier = nn.Sequential(
                nn.Linear(512 * 7 * 7, 4096),
                nn.ReLU(True),
                nn.Dropout(p=dropout),
                nn.Linear(4096, 4096),
                nn.ReLU(True),
                nn.Dropout(p=dropout),
                nn.Linear(4096, num_classes),
            )
        else:
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.classifier = nn.Sequential(nn.Linear(512, num_classes))
        self.num_features = self.classifier[-1].in_features
        self.classifier_name = f"classifier.{len(self.classifier) - 1}"
        self.first_conv_name = "features.0"
        self.init_weights()

    def init_weights(self) -> None:
        if self.features[0].weight.is_meta:
            return  # built for counting only
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, 0, 0.01)
                nn.init.zeros_(module.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def pre_logits(self, features: torch.Tensor) -> torch.Tensor:
        """Pooled features through every classifier layer but the last Linear."""
        return self.classifier[:-1](torch.flatten(self.avgpool(features), 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))
