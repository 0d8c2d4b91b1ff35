"""What a network is, in words: the one description every table, page and probe label uses.

``describe("resnet20", shortcut="none")`` -> plain-20; ``describe(model)`` for a built one. Block,
shortcut and depth are read from the network as built, so an override such as ``depth=56`` on
``resnet20`` is described as the ResNet-56 it builds.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn

from zoo._registry import TIMM_PREFIX, get_block
from zoo.models import create_model
from zoo.ordering import ordering_name
from zoo.resnet import ResNet
from zoo.shortcuts import ShortcutKind

# Overrides that change a network's width without changing its block, shortcut or depth: a label
# names them so two widths of one net never share a name.
WIDTH_OPTIONS = ("base_width", "groups", "expansion", "stride_on", "width_multiplier", "widths")
DESIGNS = ("plain", "residual", "pre-activation", "vgg", "timm")
ZOO_MODULES = ("zoo.",)  # where zoo's own blocks are defined: their labels need no block name


@dataclass(frozen=True)
class Architecture:
    model: str  # the registered name it was built from
    family: str  # "cifar" or "imagenet"
    design: str  # plain | residual | pre-activation | vgg | timm (one of timm's networks, described by name only)
    block: str  # registered block name(s), comma-joined; "-" for VGG and timm's
    shortcut: str  # A | B | C | none; "-" for VGG and timm's
    depth: int | None  # None for timm's networks
    bottleneck: bool
    width: dict[str, Any]  # the width overrides given (see WIDTH_OPTIONS)
    label: str  # ResNet-56 (B), plain-20, pre-act ResNet-110 (A), VGG-16-BN (CIFAR), ...

    @property
    def legend(self) -> str:
        """The group a plot draws this net in."""
        if self.design == "residual":
            return "ResNet (bottleneck)" if self.bottleneck else "ResNet (basic)"
        return {"plain": "plain", "pre-activation": "pre-act ResNet", "vgg": "VGG", "timm": "timm"}[self.design]

    def columns(self) -> dict[str, Any]:
        """The columns a results row carries."""
        return {"block": self.block, "shortcut": self.shortcut, "depth": self.depth}


def describe(name_or_model: str | nn.Module, **overrides: Any) -> Architecture:
    """The architecture of a registered name with ``create_model`` overrides, or of a built model."""
    if isinstance(name_or_model, str):
        return _describe_by_name(name_or_model, json.dumps(overrides, sort_keys=True))
    if overrides:
        raise ValueError("overrides apply to a model name, not to a built model")
    name = getattr(name_or_model, "zoo_name", type(name_or_model).__name__)
    return _describe_model(name_or_model, name, getattr(name_or_model, "zoo_overrides", {}))


@functools.lru_cache(maxsize=4096)
def _describe_by_name(name: str, overrides_json: str) -> Architecture:
    overrides = json.loads(overrides_json)
    with torch.device("meta"):
        model = create_model(name, **overrides)
    return _describe_model(model, name, overrides)


def _describe_model(model: nn.Module, name: str, overrides: dict[str, Any]) -> Architecture:
    width = {key: overrides[key] for key in WIDTH_OPTIONS if key in overrides}
    suffix = "".join(f" {key}={_text(value)}" for key, value in width.items())
    family = getattr(model, "family", "cifar")
    if name.startswith(TIMM_PREFIX):
        return Architecture(name, "imagenet", "timm", "-", "-", None, False, width, f"{name.removeprefix(TIMM_PREFIX)} (timm)")
    if not isinstance(model, ResNet):
        depth = int(getattr(model, "depth", 0))
        batch_norm = bool(getattr(model, "batch_norm", False))
        label = f"VGG-{depth}{'-BN' if batch_norm else ''}{' (CIFAR)' if family == 'cifar' else ''}{suffix}"
        return Architecture(name, family, "vgg", "-", "-", depth, False, width, label)
    blocks = sorted(set(model.block_names))
    bottleneck = any("bottleneck" in block for block in blocks)
    first = model.units()[0]
    ordering = ordering_name(type(first.branch))
    if model.shortcut_kind is ShortcutKind.NONE:
        # A plain net of another unit ordering is named by it, as a residual one is.
        design, label = "plain", f"plain-{model.depth}" + (f" {ordering}" if ordering != "original" else "")
    else:
        design = "residual" if first.pre_activation == "none" else "pre-activation"
        prefix = "pre-act " if ordering == "full pre-activation" else ""
        label = f"{prefix}ResNet-{model.depth} ({model.shortcut_kind.value})"
        # The sequel's other orderings are named, so no two of them share a label.
        if ordering not in ("original", "full pre-activation"):
            label += f" {ordering}"
    if bottleneck:
        label += " bottleneck"
    # The label above speaks for zoo's own blocks, one per net. A user's block, or a block per
    # stage, is named too, so no two nets share a label (in a plot's point labels, a claim).
    if len(blocks) > 1 or not get_block(blocks[0]).__module__.startswith(ZOO_MODULES):
        label += f" block={_text(model.block_names if len(blocks) > 1 else blocks[0])}"
    return Architecture(name, family, design, ",".join(blocks), model.shortcut_kind.value, model.depth, bottleneck, width, label + suffix)


def _text(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
