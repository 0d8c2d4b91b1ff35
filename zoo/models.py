"""The registered networks: each is a row of defaults handed to one builder, plus its card.

Naming: ``resnetD`` is the paper's ResNet of depth D (CIFAR for D = 6n+2 or 164/1001, ImageNet
for 18/34/50/101/152); ``plainD`` the same net without shortcuts; ``preresnetD`` full
pre-activation (Identity Mappings) and ``resnetD_ORDERING`` its other activation orderings
(``bn_after_add``, ``relu_before_add``, ``relu_preact``); ``vggD`` torchvision's ImageNet VGG and ``cifar_vggD`` the
same convolutions with a 32x32 head; ``_bn`` adds batch norm.
"""

from __future__ import annotations

import inspect
import os
from typing import Any

import torch
import torch.nn as nn

from zoo._registry import (
    ModelCard,
    Published,
    check_option_types,
    get_block,
    get_model_entry,
    register_model,
    unknown_name_error,
)
from zoo.resnet import ResNet
from zoo.vgg import VGG

HE_2016 = "He et al. 2016 (arXiv 1512.03385)"
HE_2016B = "He et al. 2016b, Identity Mappings (arXiv 1603.05027)"


def _resnet(name: str, family: str, depth: int, block: str, shortcut: str, published: Published) -> None:
    classes = 10 if family == "cifar" else 1000
    defaults = dict(family=family, block=block, shortcut=shortcut, depth=depth, num_classes=classes)
    size = 32 if family == "cifar" else 224
    card = ModelCard(name, family, "resnet", block, shortcut, depth, size, classes, published)
    register_model(name, ResNet, defaults, card)


def _vgg(name: str, family: str, depth: int, batch_norm: bool, published: Published) -> None:
    classes = 10 if family == "cifar" else 1000
    defaults = dict(family=family, depth=depth, batch_norm=batch_norm, num_classes=classes)
    size = 32 if family == "cifar" else 224
    card = ModelCard(name, family, "vgg", None, None, depth, size, classes, published)
    register_model(name, VGG, defaults, card)


# CIFAR-10 (He et al. 2016, Section 4.2, Table 6): option A shortcuts everywhere; and the test
# errors of akamaster/pytorch_resnet_cifar10, the reference PyTorch reproduction of the table.
_CIFAR_TABLE6 = {20: (0.27e6, 8.75, 8.27), 32: (0.46e6, 7.51, 7.37), 44: (0.66e6, 7.17, 6.90), 56: (0.85e6, 6.97, 6.61), 110: (1.7e6, 6.43, 6.32), 1202: (19.4e6, 7.93, 6.18)}
for _depth, (_params, _error, _reproduced) in _CIFAR_TABLE6.items():
    _note = "best of 5 runs (mean 6.61 +- 0.16)" if _depth == 110 else ""
    _published = Published(_params, None, _error, "cifar10", f"{HE_2016}, Table 6", _note, (_reproduced, "akamaster/pytorch_resnet_cifar10"))
    _resnet(f"resnet{_depth}", "cifar", _depth, "basic", "A", _published)
for _depth in (20, 32, 44, 56, 110):
    _resnet(f"plain{_depth}", "cifar", _depth, "basic", "none", Published(source=f"{HE_2016}, Fig. 6", note="curves only"))

# Identity Mappings (Tables 2 and 3). Bottleneck nets project where the shape changes (B).
_resnet("preresnet110", "cifar", 110, "preact_basic", "A", Published(1.7e6, None, 6.37, "cifar10", f"{HE_2016B}, Table 2"))
_resnet("resnet164", "cifar", 164, "bottleneck", "B", Published(1.7e6, None, 5.93, "cifar10", f"{HE_2016B}, Table 3"))
_resnet("preresnet164", "cifar", 164, "preact_bottleneck", "B", Published(1.7e6, None, 5.46, "cifar10", f"{HE_2016B}, Table 3"))
_resnet("preresnet1001", "cifar", 1001, "preact_bottleneck", "B", Published(10.2e6, None, 4.92, "cifar10", f"{HE_2016B}, Table 3"))
# The sequel's other activation orderings (Table 2, Fig. 4b-d), at both of its depths.
_ORDERINGS = {
    "bn_after_add": ((8.17, 6.50), "BN after addition"),
    "relu_before_add": ((7.84, 6.14), "ReLU before addition"),
    "relu_preact": ((6.71, 5.91), "ReLU-only pre-activation"),
}
for _suffix, ((_error_110, _error_164), _ordering) in _ORDERINGS.items():
    _basic, _bottleneck = ("relu_preact_basic", "relu_preact_bottleneck") if _suffix == "relu_preact" else (f"basic_{_suffix}", f"bottleneck_{_suffix}")
    _resnet(f"resnet110_{_suffix}", "cifar", 110, _basic, "A", Published(1.7e6, None, _error_110, "cifar10", f"{HE_2016B}, Table 2", _ordering))
    _resnet(f"resnet164_{_suffix}", "cifar", 164, _bottleneck, "B", Published(1.7e6, None, _error_164, "cifar10", f"{HE_2016B}, Table 2", _ordering))

# ImageNet (He et al. 2016, Tables 1-3): top-1 10-crop validation error, option B.
_IMAGENET = {
    18: ("basic", 1.8e9, 27.88, "Table 2, option A"),
    34: ("basic", 3.6e9, 24.52, "Table 3, option B"),
    50: ("bottleneck", 3.8e9, 22.85, "Table 3"),
    101: ("bottleneck", 7.6e9, 21.75, "Table 3"),
    152: ("bottleneck", 11.3e9, 21.43, "Table 3"),
}
for _depth, (_block, _macs, _error, _note) in _IMAGENET.items():
    _resnet(f"resnet{_depth}", "imagenet", _depth, _block, "B", Published(None, _macs, _error, "imagenet", f"{HE_2016}, Tables 1-3", _note))

# VGG: parameters from Simonyan & Zisserman (Table 2); MACs and error as the ResNet paper prints them.
_VGG = {
    11: Published(133e6, None, None, "imagenet", "Simonyan & Zisserman 2015, Table 2"),
    13: Published(133e6, None, None, "imagenet", "Simonyan & Zisserman 2015, Table 2"),
    16: Published(138e6, 15.3e9, 28.07, "imagenet", f"{HE_2016}, Table 3 and Section 3.3"),
    19: Published(144e6, 19.6e9, None, "imagenet", f"{HE_2016}, Section 3.3"),
}
for _depth, _published in _VGG.items():
    _vgg(f"vgg{_depth}", "imagenet", _depth, False, _published)
    _vgg(f"vgg{_depth}_bn", "imagenet", _depth, True, Published(source="torchvision"))
    _vgg(f"cifar_vgg{_depth}", "cifar", _depth, False, Published())
    _vgg(f"cifar_vgg{_depth}_bn", "cifar", _depth, True, Published())


def _keyword_names(function: Any, skip: tuple[str, ...] = ()) -> set[str]:
    parameters = inspect.signature(function).parameters.values()
    return {p.name for p in parameters if p.kind is not inspect.Parameter.VAR_KEYWORD and p.name not in skip}


def model_options(name: str, config: dict[str, Any] | None = None) -> list[str]:
    """The overrides ``create_model(name, ...)`` accepts (network options, then block options)."""
    entry = get_model_entry(name)
    options = _keyword_names(entry.builder, skip=("family",))
    if entry.builder is ResNet:
        block = (config or entry.defaults)["block"]
        for block_cls in block if isinstance(block, (list, tuple)) else [block]:
            cls = get_block(block_cls)
            options |= _keyword_names(cls.__init__, skip=("self", "in_channels", "channels", "stride"))
            options |= set(getattr(cls, "options", ()))
    return sorted(options)


def create_model(name: str, weights: str | os.PathLike[str] | dict[str, torch.Tensor] | None = None, **overrides: Any) -> nn.Module:
    """Build a registered network; keyword overrides win over its defaults.

    ``weights``: a state dict or a local checkpoint file (torchvision's or the zoo's keys) to load,
    strictly. torchvision's bottleneck weights are v1.5: they set ``stride_on="3x3"`` (with a
    note) and are refused with ``stride_on="1x1"``, never loaded into another network.

    >>> create_model("resnet56", shortcut="C", block="preact_basic", depth=110, num_classes=100)
    """
    entry = get_model_entry(name)
    state_dict = None
    if weights is not None:
        from zoo.convert import read_weights, weights_overrides

        state_dict = read_weights(weights)
        overrides = weights_overrides(name, overrides, state_dict)
    config = {**entry.defaults, **overrides}
    if "block" in overrides:
        block = overrides["block"]
        for item in block if isinstance(block, (list, tuple)) else [block]:
            get_block(item)  # unknown block: error naming the registered ones
    valid = model_options(name, config)
    for key in overrides:
        if key not in valid:
            raise unknown_name_error(f"option for model {name!r}:", key, valid)
    check_option_types(overrides)
    from zoo.size import check_buildable  # imports this module

    check_buildable(name, **overrides)  # before building: a 100k-layer net takes minutes even on meta
    model = entry.builder(**config)
    model.zoo_name = name
    model.zoo_overrides = dict(overrides)
    if state_dict is not None:
        from zoo.convert import load_into

        load_into(model, state_dict)
    return model


def model_card(name: str) -> ModelCard:
    return get_model_entry(name).card
