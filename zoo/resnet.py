"""One ResNet builder for every block, shortcut, depth and width, CIFAR or ImageNet stem.

The network owns the shortcut and the addition (``ResidualUnit``), so a block only computes its
residual branch and every shortcut option works with every registered block.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn as nn

from zoo._registry import block_name, get_block
from zoo.interface import ClassifierInterface
from zoo.ordering import unit_ordering
from zoo.shortcuts import Projection, ShortcutKind, build_shortcut

FAMILIES = ("cifar", "imagenet")
STAGE_WIDTHS = {"cifar": (16, 32, 64), "imagenet": (64, 128, 256, 512)}
INPUT_SIZES = {"cifar": 32, "imagenet": 224}
# ImageNet stage depths by total depth (He et al. 2016, Table 1).
IMAGENET_STAGES = {
    18: (2, 2, 2, 2),
    34: (3, 4, 6, 3),
    50: (3, 4, 6, 3),
    101: (3, 4, 23, 3),
    152: (3, 8, 36, 3),
    200: (3, 24, 36, 3),
}


class ResidualUnit(nn.Module):
    """out = after_addition(F(pre(x)) + shortcut(x)).

    ``pre`` is the block's ``preact`` (BN-ReLU or ReLU), applied once, feeding the branch and any
    projection shortcut (as in the Identity Mappings code and timm's resnetv2), while identity
    and zero-pad shortcuts keep the raw input so the signal path stays clean. ``after_addition``
    is what the block's ordering puts on the sum: a ReLU (original), nothing (pre-activation), or
    BN-ReLU (the sequel's Fig. 4b).
    """

    def __init__(self, branch: nn.Module, shortcut: nn.Module | None, changes_shape: bool, out_channels: int) -> None:
        super().__init__()
        self.branch = branch
        self.shortcut = shortcut
        self.pre_activation, after = unit_ordering(type(branch))
        self.after_addition = activation(after, out_channels)
        self.shortcut_takes_preact = isinstance(shortcut, Projection)
        self.changes_shape = changes_shape
        self.lesioned = False  # Veit et al.'s lesion: the branch is dropped, the shortcut kept

    def lesion(self, on: bool = True) -> None:
        """Drop the residual branch. A plain unit becomes the identity, which only a unit that
        keeps its shape can be; a shape-changing residual unit keeps its shortcut's projection or
        zero-padding, so callers report those apart."""
        if on and self.shortcut is None and self.changes_shape:
            raise ValueError("a plain unit that changes shape cannot be lesioned (no identity fits)")
        self.lesioned = on

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        preact = getattr(self.branch, "preact", None)
        needs_preact = preact is not None and (not self.lesioned or self.shortcut_takes_preact)
        branch_input = preact(x) if needs_preact else x
        shortcut = None
        if self.shortcut is not None:
            shortcut = self.shortcut(branch_input if self.shortcut_takes_preact else x)
        if self.lesioned:
            out = x if shortcut is None else shortcut
        else:
            out = self.branch(branch_input)
            out = out if shortcut is None else out + shortcut
        return self.after_addition(out)


def activation(kind: str, channels: int) -> nn.Module:
    """The module for an ordering's ``relu`` / ``bn_relu`` / ``none`` at ``channels`` channels.

    Never in place: a lesioned unit passes its input through, which the caller still holds.
    """
    if kind == "relu":
        return nn.ReLU()
    if kind == "bn_relu":
        return nn.Sequential(OrderedDict(bn=nn.BatchNorm2d(channels), relu=nn.ReLU()))
    return nn.Identity()


def stage_depths(family: str, depth: int, layers_per_block: int, stages: int) -> tuple[int, ...]:
    """Blocks per stage for a total depth (conv and FC layers, as the papers count them)."""
    if family == "cifar":
        per_stage, remainder = divmod(depth - 2, layers_per_block * stages)
        if remainder or per_stage < 1:
            form = f"{layers_per_block * stages}n+2"
            valid = [layers_per_block * stages * n + 2 for n in (1, 2, 3, 9, 18)]
            raise ValueError(
                f"depth {depth} is not {form} (required with {layers_per_block}-layer blocks on "
                f"{stages} stages); e.g. {', '.join(map(str, valid))}"
            )
        return (per_stage,) * stages
    valid = [d for d, counts in IMAGENET_STAGES.items() if layers_per_block * sum(counts) + 2 == d]
    if depth not in valid:
        raise ValueError(
            f"depth {depth} is not an ImageNet ResNet depth for {layers_per_block}-layer blocks; "
            f"valid: {', '.join(map(str, valid))}"
        )
    return IMAGENET_STAGES[depth]


def stage_blocks(block: Any, stages: int) -> list[type[nn.Module]]:
    """Each stage's block class: one block for all, or one per stage (checked by the build and by
    ``zoo.estimate``, which would otherwise count only the stages the list covers)."""
    names = list(block) if isinstance(block, (list, tuple)) else [block] * stages
    if len(names) != stages:
        raise ValueError(f"block: got {len(names)} blocks ({', '.join(map(str, names))}) for {stages} stages; valid: one block, or one per stage")
    return [get_block(name) for name in names]


def check_sizes(widths: Sequence[int], width_multiplier: int, num_classes: int, in_chans: int) -> None:
    """The size options a ResNet checks before it is built, and ``zoo.estimate`` before it counts."""
    if width_multiplier < 1 or any(w < 1 for w in widths):
        raise ValueError(f"widths and width_multiplier must be positive, got {tuple(widths)} x {width_multiplier}")
    if num_classes < 1:
        raise ValueError(f"num_classes must be positive, got {num_classes}")
    if in_chans < 1:
        raise ValueError(f"in_chans must be positive, got {in_chans}")


class ResNet(ClassifierInterface, nn.Module):
    """ResNet of any registered block(s), shortcut option, depth and width.

    Args:
        block: a registered block name (or class), or one per stage.
        shortcut: "A", "B", "C" or "none" (see ``zoo.shortcuts``).
        depth: CIFAR 6n+2 (two-layer blocks) / 9n+2 (bottlenecks); ImageNet 18, 34, 50, 101, 152.
        family: "cifar" (3x3 stem, 32x32 inputs) or "imagenet" (7x7/2 stem + max-pool, 224x224).
        widths: channels per stage before expansion (default 16/32/64 or 64/128/256/512).
        width_multiplier: Wide-ResNet's k, multiplies the stage widths (not the stem).
        zero_init_residual: zero the last BN (or conv) of each branch so units start as identity.
        **block_options: passed to every block (``base_width``, ``groups``, ``stride_on``, ...).
    """

    def __init__(
        self,
        *,
        block: str | type[nn.Module] | Sequence[str | type[nn.Module]] = "basic",
        shortcut: str | ShortcutKind = "A",
        depth: int = 20,
        family: str = "cifar",
        widths: Sequence[int] | None = None,
        width_multiplier: int = 1,
        num_classes: int = 10,
        in_chans: int = 3,
        zero_init_residual: bool = False,
        **block_options: Any,
    ) -> None:
        super().__init__()
        if family not in FAMILIES:
            raise ValueError(f"unknown family {family!r}; valid: {', '.join(FAMILIES)}")
        widths = tuple(widths or STAGE_WIDTHS[family])
        check_sizes(widths, width_multiplier, num_classes, in_chans)
        blocks = stage_blocks(block, len(widths))
        layers_per_block = {getattr(b, "layers_per_block", 2) for b in blocks}
        if len(layers_per_block) != 1:
            raise ValueError("blocks of one network must share layers_per_block so depth is well defined")
        kind = ShortcutKind.parse(shortcut)
        counts = stage_depths(family, depth, layers_per_block.pop(), len(widths))

        self.family = family
        self.default_input_size = INPUT_SIZES[family]
        self.in_chans = in_chans
        self.num_classes = num_classes
        self.block_names = [block_name(b) for b in blocks]
        self.shortcut_kind = kind
        self.depth = depth

        stem_width = widths[0]
        # The stem ends with whatever of BN-ReLU the first unit does not apply to its own input:
        # a bare conv before full pre-activation, conv-BN before a ReLU-only pre-activation.
        first_pre = unit_ordering(blocks[0])[0]
        if family == "cifar":
            stem: list[tuple[str, nn.Module]] = [("conv1", nn.Conv2d(in_chans, stem_width, 3, padding=1, bias=False))]
        else:
            stem = [("conv1", nn.Conv2d(in_chans, stem_width, 7, stride=2, padding=3, bias=False))]
        if first_pre != "bn_relu":
            stem.append(("bn1", nn.BatchNorm2d(stem_width)))
        if first_pre == "none":
            stem.append(("relu", nn.ReLU(inplace=True)))
        if family == "imagenet":
            stem.append(("maxpool", nn.MaxPool2d(3, stride=2, padding=1)))
        for name, module in stem:
            self.add_module(name, module)
        self.stem_names = [name for name, _ in stem]

        in_channels = stem_width
        for index, (block_cls, count, width) in enumerate(zip(blocks, counts, widths)):
            units = []
            for position in range(count):
                stride = 2 if index > 0 and position == 0 else 1
                branch = block_cls(in_channels, width * width_multiplier, stride, **block_options)
                out_channels = width * width_multiplier * branch.expansion
                pre, after = unit_ordering(block_cls)
                # A projection gets its own BN unless one follows the addition anyway (this
                # unit's BN after addition, or the next unit's BN-ReLU pre-activation).
                projection_norm = after != "bn_relu" and pre != "bn_relu"
                shortcut_module = build_shortcut(kind, in_channels, out_channels, stride, projection_norm)
                changes_shape = stride != 1 or in_channels != out_channels
                units.append(ResidualUnit(branch, shortcut_module, changes_shape, out_channels))
                in_channels = out_channels
            self.add_module(f"layer{index + 1}", nn.Sequential(*units))
        self.num_stages = len(widths)
        self.num_features = in_channels
        # Pre-activation nets end with the pre-activation a next unit would have applied to the
        # last sum (BN-ReLU, or ReLU), as the Identity Mappings code does.
        last_pre = unit_ordering(blocks[-1])[0]
        if last_pre == "bn_relu":
            self.final_act: nn.Module = nn.Sequential(nn.BatchNorm2d(in_channels), nn.ReLU(inplace=True))
        else:
            self.final_act = nn.ReLU(inplace=True) if last_pre == "relu" else nn.Identity()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_channels, num_classes)
        self.init_weights(zero_init_residual)

    def init_weights(self, zero_init_residual: bool = False) -> None:
        """He (Kaiming) normal init for convs, as in the paper; BN to identity."""
        if self.fc.weight.is_meta:
            return  # built for counting only: initialising meta tensors costs time and means nothing
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        if zero_init_residual:
            for unit in self.units():
                if hasattr(unit.branch, "zero_init_last"):
                    unit.branch.zero_init_last()

    def stages(self) -> list[nn.Sequential]:
        return [getattr(self, f"layer{i + 1}") for i in range(self.num_stages)]

    def units(self) -> list[ResidualUnit]:
        return [unit for stage in self.stages() for unit in stage]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        for name in self.stem_names:
            x = getattr(self, name)(x)
        for stage in self.stages():
            x = stage(x)
        return self.final_act(x)

    classifier_name = "fc"

    def pre_logits(self, features: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.avgpool(features), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pre_logits(self.forward_features(x)))
