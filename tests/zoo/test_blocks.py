"""The contract battery, run over every registered block (a user's included) x every shortcut."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn as nn

import zoo
from zoo.testing import SHORTCUTS, check_block_contract


@zoo.register("test_se_basic")
class SqueezeExciteBasic(nn.Module):
    """A user's block, registered the way the README shows: it gets the battery by registering."""

    expansion = 1
    post_activation = True
    layers_per_block = 2

    def __init__(self, in_channels: int, channels: int, stride: int = 1, *, reduction: int = 4, **options: Any) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.gate = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(channels, max(1, channels // reduction), 1),
            nn.ReLU(),
            nn.Conv2d(max(1, channels // reduction), channels, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
        return x * self.gate(x)


@pytest.mark.parametrize("shortcut", SHORTCUTS)
@pytest.mark.parametrize("block", zoo.list_blocks())
def test_block_contract(block: str, shortcut: str) -> None:
    check_block_contract(block, shortcut)


def test_user_block_is_in_the_battery_and_buildable_by_name() -> None:
    assert "test_se_basic" in zoo.list_blocks()
    model = zoo.create_model("resnet20", block="test_se_basic", shortcut="B", reduction=2)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_projection_takes_the_preactivated_input() -> None:
    # With a projection, a pre-activation unit's shortcut sees BN-ReLU(x): shifting x by a
    # constant that BN removes must leave the unit's output unchanged (eval-mode BN would not,
    # so use train mode where BN normalises by batch statistics).
    model = zoo.create_model("preresnet164", shortcut="C").train()
    unit = model.layer2[0]
    x = torch.randn(4, 64, 8, 8)
    assert torch.allclose(unit(x), unit(x + 3.0), atol=1e-4)
    # Identity shortcuts carry the raw input: the same shift shows up in the output.
    identity_unit = zoo.create_model("preresnet164", shortcut="A").train().layer1[1]
    y = torch.randn(4, 64, 8, 8)
    assert torch.allclose(identity_unit(y + 3.0) - identity_unit(y), torch.full_like(y, 3.0), atol=1e-4)


def test_zero_pad_shortcut_subsamples_and_pads() -> None:
    model = zoo.create_model("resnet20").eval()
    unit = model.layer2[0]
    x = torch.randn(1, 16, 32, 32)
    shortcut = unit.shortcut(x)
    assert shortcut.shape == (1, 32, 16, 16)
    assert torch.equal(shortcut[:, :16], x[:, :, ::2, ::2]) and not shortcut[:, 16:].any()
    assert sum(p.numel() for p in unit.shortcut.parameters()) == 0


def test_plain_net_has_no_shortcuts() -> None:
    model = zoo.create_model("plain20")
    assert all(unit.shortcut is None for unit in model.units())


def test_expansion_option_overrides_class_value() -> None:
    model = zoo.create_model("resnet164", expansion=2)
    assert model.num_features == 128 and model.layer1[0].branch.expansion == 2
