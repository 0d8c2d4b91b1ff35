"""The model interface timm's users expect, shared by every zoo network (no timm import here).

``forward_features`` (the last feature map), ``forward_head(x, pre_logits=False)``,
``get_classifier()``, ``reset_classifier(num_classes)``, ``num_features`` and ``pretrained_cfg``
(how an image becomes the input: timm's keys). A network says where its head is with
``classifier_name`` (the last Linear) and implements ``forward_features`` and ``pre_logits``.
"""

from __future__ import annotations

import abc
from typing import Any

import torch
import torch.nn as nn

# What a model that has never seen data assumes: the conventional CIFAR-10 statistics, and
# ImageNet's (timm's IMAGENET_DEFAULT_MEAN / STD) with its resize-256 / crop-224 evaluation.
FAMILY_DATA = {
    "cifar": {"interpolation": "bicubic", "crop_pct": 1.0, "crop_mode": "squash", "mean": [0.4914, 0.4822, 0.4465], "std": [0.2470, 0.2435, 0.2616]},
    "imagenet": {"interpolation": "bilinear", "crop_pct": 0.875, "crop_mode": "center", "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
}


class ClassifierInterface(abc.ABC):
    """Mixin for nn.Module networks with ``family``, ``in_chans``, ``default_input_size``,
    ``num_classes``, ``num_features`` and a last Linear at ``classifier_name`` (a dotted path)."""

    classifier_name: str

    @abc.abstractmethod
    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last feature map, before pooling."""

    @abc.abstractmethod
    def pre_logits(self, features: torch.Tensor) -> torch.Tensor:
        """Pooled and flattened features, what the last Linear reads."""

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.pre_logits(x)
        return x if pre_logits else self.get_classifier()(x)

    def get_classifier(self) -> nn.Module:
        return self.get_submodule(self.classifier_name)  # type: ignore[attr-defined]

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """A new, freshly initialised last layer for ``num_classes`` (0: none, features out)."""
        if global_pool not in (None, "avg"):
            raise ValueError(f"global_pool {global_pool!r}: zoo networks pool by average only")
        if num_classes < 0:
            raise ValueError(f"num_classes must not be negative, got {num_classes}")
        parent_name, _, child = self.classifier_name.rpartition(".")
        parent = self.get_submodule(parent_name) if parent_name else self  # type: ignore[attr-defined]
        new: nn.Module = nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity()  # type: ignore[attr-defined]
        setattr(parent, child, new.to(next(self.parameters()).device))  # type: ignore[attr-defined]
        self.num_classes = num_classes

    @property
    def pretrained_cfg(self) -> dict[str, Any]:
        """timm's description of the input: the data this model was trained on when it carries it
        (``zoo_data``, from a search.train run), else its family's convention."""
        stored = getattr(self, "zoo_data", None)
        data = stored or {**FAMILY_DATA[self.family], "input_size": [self.in_chans, self.default_input_size, self.default_input_size]}  # type: ignore[attr-defined]
        return {
            "input_size": tuple(data["input_size"]), "interpolation": data["interpolation"], "crop_pct": data["crop_pct"],
            "crop_mode": data["crop_mode"],
            "mean": tuple(data["mean"]), "std": tuple(data["std"]), "num_classes": self.num_classes,  # type: ignore[attr-defined]
            "first_conv": getattr(self, "first_conv_name", "conv1"), "classifier": self.classifier_name,
        }

    @property
    def default_cfg(self) -> dict[str, Any]:  # timm's older name
        return self.pretrained_cfg
