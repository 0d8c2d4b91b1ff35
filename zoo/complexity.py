"""Parameters and MACs, counted the way the ResNet paper counts "FLOPs".

MACs are multiply-accumulates of convolutions and fully connected layers only (torchvision's
``_ops`` convention; BN, ReLU, pooling and additions are not counted). They come from
``torch.utils.flop_counter`` (2 FLOPs per MAC). By name, the network is built and run on the meta
device: no weights are allocated and no arithmetic is done, so ResNet-1202 costs milliseconds.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn

from zoo.models import create_model

InputSize = int | tuple[int, int] | tuple[int, int, int]


@dataclass(frozen=True)
class Complexity:
    params: int  # trainable parameters
    macs: int  # conv + linear multiply-accumulates for one image
    input_size: InputSize  # as given: a side, (H, W), or timm's (C, H, W)

    @property
    def gmacs(self) -> float:
        return self.macs / 1e9


def input_shape(input_size: InputSize, channels: int) -> tuple[int, int, int]:
    """(C, H, W) from a side, (H, W), or timm's (C, H, W) (whose C must be the model's)."""
    size = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
    if len(size) == 3:
        if size[0] != channels:
            raise ValueError(f"input_size {tuple(input_size)} has {size[0]} channels; the model takes {channels}")
        size = size[1:]
    if len(size) != 2 or not all(isinstance(side, int) and side > 0 for side in size):
        raise ValueError(f"input_size must be a positive int, (H, W) or (C, H, W), got {input_size!r}")
    return (channels, *size)


def count_macs(model: nn.Module, input_size: InputSize) -> int:
    """Conv + linear MACs of one forward pass of one image, on the model's own device."""
    parameter = next(model.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    # Imported here: it imports triton where that is installed, a second of every zoo import
    # (every command's start-up) that only counting needs.
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.zeros(1, *input_shape(input_size, getattr(model, "in_chans", 3)), device=device)
    was_training = model.training
    model.eval()  # batch statistics of one image are meaningless, and BN is not counted anyway
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(x)
    except RuntimeError as error:  # too small for the net's strides, or a head made for one size
        reason = str(error).strip().splitlines()[0][:120]
        name = getattr(model, "zoo_name", type(model).__name__)
        raise ValueError(f"{name} cannot take {x.shape[-2]}x{x.shape[-1]} inputs ({reason}); valid: its input size ({getattr(model, 'default_input_size', '?')}) or another it can take") from None
    finally:
        model.train(was_training)
    return counter.get_total_flops() // 2


def complexity(name_or_model: str | nn.Module, input_size: InputSize | None = None, **overrides: Any) -> Complexity:
    """Parameters and MACs of a registered name (built on the meta device) or a built model.

    ``input_size``: a side (224), (H, W), or timm's (C, H, W); default the model's own size.
    ``overrides`` are ``create_model`` overrides for a name (``complexity("resnet20", depth=56)``).
    Results by name are cached: the same architecture always costs the same.
    """
    if isinstance(input_size, list):
        input_size = tuple(input_size)  # a list from a config file; cached by value
    if isinstance(name_or_model, str):
        return _complexity_by_name(name_or_model, input_size, json.dumps(overrides, sort_keys=True))
    if overrides:
        raise ValueError("overrides apply to a model name, not to a built model")
    return _measure(name_or_model, input_size)


@functools.lru_cache(maxsize=4096)
def _complexity_by_name(name: str, input_size: InputSize | None, overrides_json: str) -> Complexity:
    with torch.device("meta"):
        model = create_model(name, **json.loads(overrides_json))
    return _measure(model, input_size)


def _measure(model: nn.Module, input_size: InputSize | None) -> Complexity:
    size = input_size if input_size is not None else getattr(model, "default_input_size", None)
    if size is None and isinstance(getattr(model, "pretrained_cfg", None), dict):  # one of timm's networks
        size = tuple(model.pretrained_cfg["input_size"])
    if size is None:
        raise ValueError("input_size is required for a model that does not define default_input_size")
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return Complexity(params=params, macs=count_macs(model, size), input_size=size)
