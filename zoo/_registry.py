"""Name -> block class and name -> model entry maps, with wildcard listing in natural order."""

from __future__ import annotations

import fnmatch
import numbers
import re
from dataclasses import dataclass, field
from typing import Any, Callable

import torch.nn as nn

from zoo.commandline import near
from zoo.files import PLAIN_NAME
from zoo.ordering import AFTER_ADDITIONS, unit_ordering

_BLOCKS: dict[str, type[nn.Module]] = {}
_MODELS: dict[str, ModelEntry] = {}


@dataclass(frozen=True)
class Published:
    """A figure printed in a paper, with where it comes from.

    ``error`` is a test error in percent on ``dataset`` (CIFAR-10 test set, or ImageNet top-1
    10-crop validation); ``macs`` counts multiply-accumulates (the ResNet paper's "FLOPs").
    ``reproduced`` is the same error from a public re-implementation, and where it comes from:
    what a careful reproduction reaches, beside what the paper printed.
    """

    params: float | None = None
    macs: float | None = None
    error: float | None = None
    dataset: str | None = None
    source: str = ""
    note: str = ""
    reproduced: tuple[float, str] | None = None


@dataclass(frozen=True)
class ModelCard:
    """What a registered model is, and what the papers printed about it."""

    name: str
    family: str  # "cifar" or "imagenet": decides the stem and default input size
    kind: str  # "resnet", "vgg", or "timm" (one of timm's networks)
    block: str | None
    shortcut: str | None
    depth: int | None  # None for timm's networks: the zoo does not describe their insides
    input_size: int
    num_classes: int
    published: Published = field(default_factory=Published)


@dataclass(frozen=True)
class ModelEntry:
    builder: Callable[..., nn.Module]
    defaults: dict[str, Any]
    card: ModelCard


# The built-in networks' options that count something, and those that switch something: checked
# by name before anything is built, so 8.0 or "20" is one line naming the option, not an error
# from deep inside a layer's constructor (or a fraction silently truncated by an estimate).
COUNT_OPTIONS = ("depth", "num_classes", "in_chans", "width_multiplier", "base_width", "groups", "expansion")
SWITCH_OPTIONS = ("zero_init_residual", "batch_norm")


def is_whole(value: object) -> bool:
    """An integer of any integer type (numpy's too), and not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_option_types(overrides: dict[str, Any]) -> None:
    """Refuse a count that is not a whole number (``expansion`` may also be None: the block's own)
    and a switch that is not a bool; ``widths`` is a sequence of whole numbers."""
    for key, value in overrides.items():
        if key in COUNT_OPTIONS and not (is_whole(value) or (key == "expansion" and value is None)):
            raise ValueError(f"{key} must be a whole number, got {value!r}")
        if key == "widths" and value is not None and not (isinstance(value, (list, tuple)) and all(is_whole(w) for w in value)):
            raise ValueError(f"widths must be a sequence of whole numbers (channels per stage), got {value!r}")
        if key in SWITCH_OPTIONS and not isinstance(value, bool):
            raise ValueError(f"{key} must be True or False, got {value!r}")


def natural_key(name: str) -> list[Any]:
    """Sort key that orders resnet20 before resnet110 (numbers compare as numbers)."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def unknown_name_error(what: str, name: object, choices: list[str], listed_by: str | None = None) -> ValueError:
    """One-line error naming the bad value, the near matches and all choices, or, when they are
    too many for one line, how many there are and ``listed_by``: where to see them."""
    listing = f"valid: {', '.join(choices)}" if len(choices) <= 40 else f"{len(choices)} known{f', {listed_by} lists them' if listed_by else ''}"
    return ValueError(f"unknown {what} {name!r}{near(str(name), choices, most=3)}; {listing}")


def register_block(name: str, cls: type[nn.Module]) -> type[nn.Module]:
    if not isinstance(cls, type) or not issubclass(cls, nn.Module):
        raise TypeError(f"@zoo.register({name!r}) expects an nn.Module subclass, got {cls!r}")
    if not (isinstance(name, str) and PLAIN_NAME.fullmatch(name)):
        raise ValueError(f"block name {name!r} is not a plain name (letters, digits, '_', '.', '-'): it is given on command lines and in result tables")
    if name in _BLOCKS:
        raise ValueError(f"block {name!r} is already registered (by {_BLOCKS[name].__module__})")
    if not hasattr(cls, "expansion"):
        raise ValueError(f"block {name!r} must define the class attribute 'expansion'")
    # Checked here, not when a network is first built from the block (a ZeroDivisionError then).
    for attribute in ("expansion", "layers_per_block"):
        value = getattr(cls, attribute, 1)
        if not (is_whole(value) and value >= 1):
            raise ValueError(f"block {name!r}: class attribute {attribute} must be a whole number of at least 1, got {value!r}")
    if not hasattr(cls, "after_addition") and not hasattr(cls, "post_activation"):
        raise ValueError(f"block {name!r} must define the class attribute 'after_addition' ({', '.join(AFTER_ADDITIONS)})")
    unit_ordering(cls)  # a value outside the choices: one line naming it
    _BLOCKS[name] = cls
    return cls


def get_block(name: str | type[nn.Module]) -> type[nn.Module]:
    if isinstance(name, type):
        return name
    if name not in _BLOCKS:
        unknown = unknown_name_error("block", name, list_blocks())
        raise ValueError(f"{unknown}; a block of your own is known once the module registering it is imported (on a command line: --plugins MODULE)")
    return _BLOCKS[name]


def block_name(cls: type[nn.Module]) -> str:
    for name, registered in _BLOCKS.items():
        if registered is cls:
            return name
    return cls.__name__


def register_model(name: str, builder: Callable[..., nn.Module], defaults: dict[str, Any], card: ModelCard) -> None:
    if name in _MODELS:
        raise ValueError(f"model {name!r} is already registered")
    _MODELS[name] = ModelEntry(builder, dict(defaults), card)


# ``timm:NAME`` names one of timm's own networks (``timm:resnet18d``): built by timm, described
# and counted as the zoo's are, never listed with them (timm has over a thousand).
TIMM_PREFIX = "timm:"


def get_model_entry(name: str) -> ModelEntry:
    if name.startswith(TIMM_PREFIX):
        try:
            from zoo.timm import timm_model_entry  # timm is imported only when a timm model is asked for
        except ImportError:
            raise ValueError(f"model {name!r} needs timm: pip install timm") from None
        return timm_model_entry(name.removeprefix(TIMM_PREFIX))
    if name not in _MODELS:
        raise unknown_name_error("model", name, list_models(), "python -m zoo list")
    return _MODELS[name]


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a shell-style wildcard, in natural order."""
    return sorted(fnmatch.filter(_MODELS, pattern), key=natural_key)


def list_blocks(pattern: str = "*") -> list[str]:
    """Registered block names (built-in and users'), in natural order."""
    return sorted(fnmatch.filter(_BLOCKS, pattern), key=natural_key)


def register(name: str) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator: make a residual-branch block available to every network by ``name``.

    The block contract (see README): ``__init__(in_channels, channels, stride=1, **options)``;
    ``forward(x)`` returns the residual branch F(x) only, with ``channels * expansion`` output
    channels; class attributes ``expansion`` and ``after_addition`` (``relu``, ``none`` or
    ``bn_relu``: what the unit applies to the sum); optional ``pre_activation`` (``none``,
    ``relu``, ``bn_relu``) with the sub-module ``preact`` that applies it (the unit applies it
    first and feeds its output to projection shortcuts too), ``layers_per_block`` (default 2) and
    ``zero_init_last()``. ``post_activation = True/False`` is the older spelling of the original
    and the full pre-activation ordering.
    """

    def decorator(cls: type[nn.Module]) -> type[nn.Module]:
        return register_block(name, cls)

    return decorator
