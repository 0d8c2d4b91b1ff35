"""Built-in residual branches: the original (post-activation) blocks of He et al. (2016) and the
five activation orderings of Identity Mappings (He et al., 2016, Fig. 4), basic and bottleneck.

A block computes only the residual branch F(x); the network adds the shortcut, so every shortcut
option works with every block. Two class attributes say what the unit does around the branch:
``pre_activation`` (applied to the unit's input before the branch and a projection shortcut:
``none``, ``relu`` or ``bn_relu``; the block owns the module as ``preact``) and
``after_addition`` (applied to the sum: ``relu``, ``none`` or ``bn_relu``). The network's stem and
head follow from the first and last block's ``pre_activation`` (see ``zoo.resnet``), not from the
ordering as a whole. Module names follow torchvision (conv1, bn1, ...) so its weights map onto
ours with a rename of the unit prefix only.
"""

from __future__ import annotations

import abc
from collections import OrderedDict
from typing import Any

import torch
import torch.nn as nn

from zoo._registry import register

STRIDE_PLACEMENTS = ("1x1", "3x3")


def reject_unknown_options(block: str, options: dict[str, Any], valid: tuple[str, ...]) -> None:
    """Blocks get every network option meant for blocks; one they cannot honour is an error."""
    if options:
        bad = ", ".join(sorted(options))
        raise ValueError(f"block {block!r} has no option {bad}; its options: {', '.join(valid)}")


def conv3x3(in_channels: int, out_channels: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, groups=groups, bias=False)


def conv1x1(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)


def bottleneck_geometry(channels: int, stride: int, base_width: int, groups: int, stride_on: str) -> tuple[int, int, int]:
    """(inner width, stride of the first 1x1, stride of the 3x3) of a bottleneck.

    The inner width is ResNeXt / Wide-ResNet's: ``channels`` at base_width 64 and one group. The
    paper strides the first 1x1; torchvision's "v1.5" strides the 3x3.
    """
    for name, value in (("base_width", base_width), ("groups", groups)):
        if value < 1:
            raise ValueError(f"{name} must be positive, got {value}")
    if stride_on not in STRIDE_PLACEMENTS:
        raise ValueError(f"unknown stride_on {stride_on!r}; valid: {', '.join(STRIDE_PLACEMENTS)}")
    width = int(channels * (base_width / 64.0)) * groups
    return (width, stride, 1) if stride_on == "1x1" else (width, 1, stride)


class PreActivation(nn.Sequential):
    """BN-ReLU applied by the network before the branch and before a projection shortcut."""

    def __init__(self, channels: int) -> None:
        super().__init__(OrderedDict(bn=nn.BatchNorm2d(channels), relu=nn.ReLU(inplace=True)))


def relu_only_preactivation() -> nn.ReLU:
    # Not in place: the unit's identity shortcut still needs the raw input.
    return nn.ReLU(inplace=False)


def resolve_expansion(default: int, expansion: int | None) -> int:
    """A block's output channels per stage channel: its own default, or the ``expansion`` option,
    which must be positive (0 is refused, not read as "the default")."""
    if expansion is None:
        return default
    if expansion < 1:
        raise ValueError(f"expansion must be positive, got {expansion}")
    return expansion


class BasicBranch(nn.Module, abc.ABC):
    """What both two-layer blocks share: the option contract (only ``expansion``). A subclass lays
    out its layers in ``build``."""

    expansion = 1
    layers_per_block = 2
    block_name = "basic"

    def __init__(self, in_channels: int, channels: int, stride: int = 1, *, expansion: int | None = None, **options: Any) -> None:
        super().__init__()
        reject_unknown_options(self.block_name, options, ("expansion",))
        self.expansion = resolve_expansion(type(self).expansion, expansion)
        self.build(in_channels, channels, channels * self.expansion, stride)

    @abc.abstractmethod
    def build(self, in_channels: int, channels: int, out_channels: int, stride: int) -> None:
        """Lay out the layers (module names follow torchvision's, so its weights map onto ours)."""

    def zero_init_last(self) -> None:
        """Zero the branch's last scaling layer so the unit starts as its shortcut."""
        nn.init.zeros_(getattr(self, self.last_layer).weight)


@register("basic")
class BasicBlock(BasicBranch):
    """Post-activation 3x3-3x3 (He et al. 2016, Fig. 2 left)."""

    after_addition = "relu"
    last_layer = "bn2"

    def build(self, in_channels: int, channels: int, out_channels: int, stride: int) -> None:
        self.conv1 = conv3x3(in_channels, channels, stride)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(channels, out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))


class BottleneckBranch(nn.Module, abc.ABC):
    """What both bottlenecks share: the option contract and the inner geometry. A subclass lays
    out its layers in ``build``; this constructor's keyword parameters are the options
    ``create_model`` checks."""

    expansion = 4
    layers_per_block = 3
    options = ("base_width", "groups", "expansion", "stride_on")
    block_name = "bottleneck"

    def __init__(
        self,
        in_channels: int,
        channels: int,
        stride: int = 1,
        *,
        base_width: int = 64,
        groups: int = 1,
        expansion: int | None = None,
        stride_on: str = "1x1",
        **options: Any,
    ) -> None:
        super().__init__()
        reject_unknown_options(self.block_name, options, self.options)
        self.expansion = resolve_expansion(type(self).expansion, expansion)
        width, stride_1x1, stride_3x3 = bottleneck_geometry(channels, stride, base_width, groups, stride_on)
        self.build(in_channels, width, channels * self.expansion, stride_1x1, stride_3x3, groups)

    @abc.abstractmethod
    def build(self, in_channels: int, width: int, out_channels: int, stride_1x1: int, stride_3x3: int, groups: int) -> None:
        """Lay out the layers around an inner width ``width``, strided where ``stride_on`` says."""

    def zero_init_last(self) -> None:
        """Zero the branch's last scaling layer so the unit starts as its shortcut."""
        nn.init.zeros_(getattr(self, self.last_layer).weight)


@register("bottleneck")
class Bottleneck(BottleneckBranch):
    """Post-activation 1x1-3x3-1x1 (He et al. 2016, Fig. 5 right).

    The paper puts the downsampling stride on the first 1x1 (``stride_on="1x1"``, the default);
    torchvision's "ResNet v1.5" moves it to the 3x3 (same parameters, more MACs, better accuracy).
    """

    after_addition = "relu"
    last_layer = "bn3"

    def build(self, in_channels: int, width: int, out_channels: int, stride_1x1: int, stride_3x3: int, groups: int) -> None:
        self.conv1 = conv1x1(in_channels, width, stride_1x1)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = conv3x3(width, width, stride_3x3, groups)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = conv1x1(width, out_channels)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        return self.bn3(self.conv3(x))


@register("preact_basic")
class PreActBasicBlock(BasicBranch):
    """Full pre-activation 3x3-3x3 (Identity Mappings, Fig. 4e): BN-ReLU-conv-BN-ReLU-conv."""

    pre_activation, after_addition = "bn_relu", "none"
    block_name = "preact_basic"
    last_layer = "conv2"

    def build(self, in_channels: int, channels: int, out_channels: int, stride: int) -> None:
        self.preact = PreActivation(in_channels)
        self.conv1 = conv3x3(in_channels, channels, stride)
        self.bn2 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(channels, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x is already pre-activated by the network (self.preact), see ResidualUnit.
        return self.conv2(self.relu(self.bn2(self.conv1(x))))


@register("preact_bottleneck")
class PreActBottleneck(BottleneckBranch):
    """Full pre-activation 1x1-3x3-1x1 (Identity Mappings; ResNet-164/1001 on CIFAR)."""

    pre_activation, after_addition = "bn_relu", "none"
    block_name = "preact_bottleneck"
    last_layer = "conv3"

    def build(self, in_channels: int, width: int, out_channels: int, stride_1x1: int, stride_3x3: int, groups: int) -> None:
        self.preact = PreActivation(in_channels)
        self.conv1 = conv1x1(in_channels, width, stride_1x1)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv2 = conv3x3(width, width, stride_3x3, groups)
        self.bn3 = nn.BatchNorm2d(width)
        self.conv3 = conv1x1(width, out_channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn2(self.conv1(x)))
        x = self.relu(self.bn3(self.conv2(x)))
        return self.conv3(x)


# ---------------------------------------------------------------------------------------------
# The sequel's other orderings (Identity Mappings Fig. 4b-d; Table 2 at ResNet-110 and -164).
# Each keeps the original's layers and moves one BN or ReLU across the addition.


@register("basic_bn_after_add")
class BNAfterAdditionBasic(BasicBlock):
    """Fig. 4b: conv-BN-ReLU-conv, then BN and ReLU on the sum (the unit applies them)."""

    after_addition = "bn_relu"
    block_name = "basic_bn_after_add"
    last_layer = "conv2"

    def build(self, in_channels: int, channels: int, out_channels: int, stride: int) -> None:
        super().build(in_channels, channels, out_channels, stride)
        self.bn2 = nn.Identity()  # the original's last BN, moved after the addition


@register("basic_relu_before_add")
class ReLUBeforeAdditionBasic(BasicBlock):
    """Fig. 4c: the original branch with its ReLU moved before the addition (a non-negative F)."""

    after_addition = "none"
    ordering = "ReLU before addition"
    block_name = "basic_relu_before_add"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(super().forward(x))


@register("relu_preact_basic")
class ReLUPreActBasicBlock(BasicBlock):
    """Fig. 4d: ReLU-conv-BN-ReLU-conv-BN, nothing after the addition: the original's layers with
    its ReLU moved from after the addition to before the branch (the unit applies ``preact``)."""

    pre_activation, after_addition = "relu", "none"
    block_name = "relu_preact_basic"

    def build(self, in_channels: int, channels: int, out_channels: int, stride: int) -> None:
        self.preact = relu_only_preactivation()
        super().build(in_channels, channels, out_channels, stride)


@register("bottleneck_bn_after_add")
class BNAfterAdditionBottleneck(Bottleneck):
    """Fig. 4b, bottleneck: 1x1-BN-ReLU-3x3-BN-ReLU-1x1, then BN and ReLU on the sum."""

    after_addition = "bn_relu"
    block_name = "bottleneck_bn_after_add"
    last_layer = "conv3"

    def build(self, in_channels: int, width: int, out_channels: int, stride_1x1: int, stride_3x3: int, groups: int) -> None:
        super().build(in_channels, width, out_channels, stride_1x1, stride_3x3, groups)
        self.bn3 = nn.Identity()  # the original's last BN, moved after the addition


@register("bottleneck_relu_before_add")
class ReLUBeforeAdditionBottleneck(Bottleneck):
    """Fig. 4c, bottleneck: the original branch with its last ReLU before the addition."""

    after_addition = "none"
    ordering = "ReLU before addition"
    block_name = "bottleneck_relu_before_add"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(super().forward(x))


@register("relu_preact_bottleneck")
class ReLUPreActBottleneck(Bottleneck):
    """Fig. 4d, bottleneck: ReLU-1x1-BN-ReLU-3x3-BN-ReLU-1x1-BN, nothing after the addition."""

    pre_activation, after_addition = "relu", "none"
    block_name = "relu_preact_bottleneck"

    def build(self, in_channels: int, width: int, out_channels: int, stride_1x1: int, stride_3x3: int, groups: int) -> None:
        self.preact = relu_only_preactivation()
        super().build(in_channels, width, out_channels, stride_1x1, stride_3x3, groups)


# The built-in blocks by design and ordering: what the ``preact`` space and its claims compare.
ORDERING_BLOCKS = {
    "basic": {
        "original": "basic",
        "BN after addition": "basic_bn_after_add",
        "ReLU before addition": "basic_relu_before_add",
        "ReLU-only pre-activation": "relu_preact_basic",
        "full pre-activation": "preact_basic",
    },
    "bottleneck": {
        "original": "bottleneck",
        "BN after addition": "bottleneck_bn_after_add",
        "ReLU before addition": "bottleneck_relu_before_add",
        "ReLU-only pre-activation": "relu_preact_bottleneck",
        "full pre-activation": "preact_bottleneck",
    },
}
