"""The shortcut options of He et al. (2016), built by the network so they work with any block.

A: identity; where the shape changes, subsample by the stride and zero-pad the new channels
   (no parameters). B: projection only where the shape changes, identity elsewhere.
C: projection on every block. NONE: no shortcut at all, the paper's plain nets.
"""

from __future__ import annotations

import enum
from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F


class ShortcutKind(str, enum.Enum):
    ZERO_PAD = "A"
    PROJECT_ON_CHANGE = "B"
    PROJECT_ALWAYS = "C"
    NONE = "none"

    @classmethod
    def parse(cls, value: str | ShortcutKind) -> ShortcutKind:
        try:
            return cls(value)
        except ValueError:
            valid = ", ".join(kind.value for kind in cls)
            raise ValueError(f"unknown shortcut {value!r}; valid: {valid}") from None


class ZeroPadShortcut(nn.Module):
    """Option A on a shape change: stride-subsample, then append zero channels."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        if out_channels < in_channels:
            raise ValueError(
                f"shortcut 'A' cannot shrink channels ({in_channels} -> {out_channels}); use 'B' or 'C'"
            )
        self.stride = stride
        self.extra_channels = out_channels - in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.extra_channels)) if self.extra_channels else x


class Projection(nn.Sequential):
    """1x1 conv, + BN unless a BN follows the addition anyway (the network decides, see ResNet)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, with_norm: bool) -> None:
        layers: OrderedDict[str, nn.Module] = OrderedDict(
            conv=nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)
        )
        if with_norm:
            layers["bn"] = nn.BatchNorm2d(out_channels)
        super().__init__(layers)


def build_shortcut(
    kind: ShortcutKind, in_channels: int, out_channels: int, stride: int, projection_norm: bool
) -> nn.Module | None:
    """The shortcut module of one unit; ``None`` means no shortcut (plain net)."""
    if kind is ShortcutKind.NONE:
        return None
    shape_changes = stride != 1 or in_channels != out_channels
    if kind is ShortcutKind.PROJECT_ALWAYS or (kind is ShortcutKind.PROJECT_ON_CHANGE and shape_changes):
        return Projection(in_channels, out_channels, stride, with_norm=projection_norm)
    if shape_changes:
        return ZeroPadShortcut(in_channels, out_channels, stride)
    return nn.Identity()
