"""Trained weights that rebuild and describe themselves: name, overrides, tensors and, when the
model carries it (``model.zoo_data``, set by ``search.train``), how an image becomes its input
(size, interpolation, crop, mean and std: timm's pretrained_cfg keys) and its class names, in
one safetensors file. ``zoo.transforms(model)`` turns that back into an evaluation transform."""

from __future__ import annotations

import json
import math
import os

import torch.nn as nn
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from zoo.files import write_atomically
from zoo.models import create_model
from zoo.size import estimate

# What ``model.zoo_data`` holds: timm's pretrained_cfg names for the input pipeline, plus the
# class names in label order.
DATA_KEYS = ("input_size", "interpolation", "crop_pct", "crop_mode", "mean", "std", "class_names")


def save(model: nn.Module, path: str | os.PathLike[str]) -> None:
    """Write ``model`` (built by ``zoo.create_model``) atomically: a crash leaves the old file."""
    name = getattr(model, "zoo_name", None)
    if name is None:
        raise ValueError("zoo.save needs a model built by zoo.create_model (it records name and overrides)")
    try:
        overrides = json.dumps(model.zoo_overrides, sort_keys=True)
    except TypeError as error:
        raise ValueError(f"overrides of {name!r} must be JSON values (use registered block names): {error}") from None
    state = {key: value.detach().contiguous().cpu() for key, value in model.state_dict().items()}
    metadata = {"zoo_name": name, "zoo_overrides": overrides}
    data = getattr(model, "zoo_data", None)
    if data is not None:
        missing = [key for key in DATA_KEYS if key not in data]
        if missing:
            raise ValueError(f"model.zoo_data lacks {', '.join(missing)}; it needs {', '.join(DATA_KEYS)}")
        metadata["zoo_data"] = json.dumps(data, sort_keys=True)
    write_atomically(path, lambda temporary: save_file(state, str(temporary), metadata=metadata))


def load(path: str | os.PathLike[str], device: str = "cpu") -> nn.Module:
    """Rebuild the network saved by ``zoo.save`` and load its weights; a file that is not one is
    a ValueError naming it."""
    try:
        return _load(path, device)
    except SafetensorError as error:
        raise ValueError(f"{path} is not a safetensors file ({error})") from None


def _load(path: str | os.PathLike[str], device: str) -> nn.Module:
    with safe_open(str(path), framework="pt", device=device) as handle:
        metadata = handle.metadata() or {}
        if "zoo_name" not in metadata:
            raise ValueError(f"{path} was not written by zoo.save (no zoo_name in its metadata)")
        stored = sum(math.prod(handle.get_slice(key).get_shape()) for key in handle.keys())
        name, overrides = metadata["zoo_name"], json.loads(metadata["zoo_overrides"])
        described = estimate(name, **overrides)
        # Checked before any tensor is read or any module built: a crafted file of a few bytes can
        # describe a network that takes minutes and all memory to build.
        if described is not None and described.params > 2 * stored + 1_000_000:
            raise ValueError(f"{path} describes {name} {overrides} (~{described.params / 1e6:,.1f}M parameters) but holds {stored / 1e6:,.1f}M values: not a file zoo.save wrote")
        state = {key: handle.get_tensor(key) for key in handle.keys()}
    model = create_model(name, **overrides)
    try:
        model.load_state_dict(state)
    except RuntimeError as error:  # tensors missing, extra or misshapen: another network's weights
        raise ValueError(f"{path} holds weights that do not fit {name} {overrides}: {' '.join(str(error).split())[:300]}") from None
    if "zoo_data" in metadata:
        model.zoo_data = json.loads(metadata["zoo_data"])
    return model.to(device)
