"""Map torchvision ResNet/VGG state dicts onto the zoo's module names, and refuse to load them
into a network that computes something else.

Only the unit prefix differs: torchvision's ``layer1.0.conv1`` is our ``layer1.0.branch.conv1``
and its ``downsample.{0,1}`` our ``shortcut.{conv,bn}``; VGG keys are identical. torchvision's
bottleneck ResNets (50/101/152) are always "v1.5", with the downsampling stride on the 3x3; the
paper's (the zoo's default) put it on the first 1x1. The parameter shapes are the same, so the
weights would load into the paper's net and silently compute another function: refused.
"""

from __future__ import annotations

import os
import pickle
import re
import warnings
from typing import Any

import torch
import torch.nn as nn

_RENAMES = [
    (re.compile(r"^(layer\d+\.\d+)\.downsample\.0\."), r"\1.shortcut.conv."),
    (re.compile(r"^(layer\d+\.\d+)\.downsample\.1\."), r"\1.shortcut.bn."),
    (re.compile(r"^(layer\d+\.\d+)\.(conv\d|bn\d)\."), r"\1.branch.\2."),
]
V15 = "3x3"  # where torchvision's bottlenecks put the stride


def is_torchvision_bottleneck(state_dict: dict[str, torch.Tensor]) -> bool:
    return any(re.match(r"^layer\d+\.\d+\.conv3\.weight$", key) for key in state_dict)


def stride_placement(model: nn.Module) -> str | None:
    """Where a bottleneck ResNet's downsampling units stride ("1x1" or "3x3"); None otherwise."""
    for unit in getattr(model, "units", lambda: [])():
        branch = unit.branch
        if hasattr(branch, "conv3") and unit.changes_shape and max(branch.conv1.stride + branch.conv2.stride) > 1:
            return "1x1" if branch.conv1.stride[0] > 1 else "3x3"
    return None


def convert_torchvision_state_dict(state_dict: dict[str, torch.Tensor], model: nn.Module | None = None) -> dict[str, torch.Tensor]:
    """torchvision's keys renamed to the zoo's. Given the ``model`` it is for, a bottleneck
    state dict (v1.5) is refused unless the model strides on the 3x3 as torchvision does."""
    if model is not None and is_torchvision_bottleneck(state_dict) and stride_placement(model) == "1x1":
        raise ValueError("torchvision's bottleneck ResNet weights are v1.5 (stride on the 3x3); this model strides on the first 1x1 as the paper does; build it with stride_on='3x3'")
    converted = {}
    for key, value in state_dict.items():
        for pattern, replacement in _RENAMES:
            key = pattern.sub(replacement, key)
        converted[key] = value
    return converted


def read_weights(weights: str | os.PathLike[str] | dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A state dict, or a local torchvision-style checkpoint file (never a download), read with
    ``weights_only=True`` so a file cannot run code."""
    if isinstance(weights, dict):
        return weights
    try:
        loaded = torch.load(os.fspath(weights), map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, ValueError, EOFError, pickle.UnpicklingError) as error:
        raise ValueError(f"cannot read weights {weights}: {str(error).splitlines()[0][:160]}") from None
    if isinstance(loaded, dict) and isinstance(loaded.get("state_dict"), dict):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, dict) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise ValueError(f"{weights} holds no state dict (a mapping of names to tensors)")
    return loaded


def weights_overrides(name: str, overrides: dict[str, Any], state_dict: dict[str, torch.Tensor]) -> dict[str, Any]:
    """The overrides that build the network these weights are for: torchvision's bottleneck
    weights set ``stride_on="3x3"`` (with a note), and are refused with ``"1x1"``."""
    if not is_torchvision_bottleneck(state_dict):
        return overrides
    asked = overrides.get("stride_on")
    if asked == "1x1":
        raise ValueError(f"{name}: torchvision's bottleneck weights are v1.5 (stride on the 3x3); stride_on='1x1' would load them into another network")
    if asked is None:
        warnings.warn(f"{name}: torchvision's bottleneck weights are v1.5, so the model strides on the 3x3 (stride_on='3x3'), not on the first 1x1 as the paper does", stacklevel=3)
    return {**overrides, "stride_on": V15}


def load_into(model: nn.Module, state_dict: dict[str, torch.Tensor]) -> None:
    """Load torchvision's or the zoo's own keys, strictly; a mismatch is one line."""
    torchvision_keys = any(".downsample." in key for key in state_dict) or any(re.match(r"^layer\d+\.\d+\.(conv|bn)\d\.", key) for key in state_dict)
    converted = convert_torchvision_state_dict(state_dict, model) if torchvision_keys else state_dict
    try:
        model.load_state_dict(converted, strict=True)
    except RuntimeError as error:
        detail = " ".join(str(error).split())[:300]
        raise ValueError(f"the weights do not fit {getattr(model, 'zoo_name', type(model).__name__)}: {detail}") from None
