"""Map torchvision ResNet/VGG state dicts onto the zoo's module names.

Only the unit prefix differs: torchvision's ``layer1.0.conv1`` is our ``layer1.0.branch.conv1``
and its ``downsample.{0,1}`` our ``shortcut.{conv,bn}``; VGG keys are identical.
"""

from __future__ import annotations

import re

import torch

_RENAMES = [
    (re.compile(r"^(layer\d+\.\d+)\.downsample\.0\."), r"\1.shortcut.conv."),
    (re.compile(r"^(layer\d+\.\d+)\.downsample\.1\."), r"\1.shortcut.bn."),
    (re.compile(r"^(layer\d+\.\d+)\.(conv\d|bn\d)\."), r"\1.branch.\2."),
]


def convert_torchvision_state_dict(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    converted = {}
    for key, value in state_dict.items():
        for pattern, replacement in _RENAMES:
            key = pattern.sub(replacement, key)
        converted[key] = value
    return converted
