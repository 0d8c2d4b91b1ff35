"""ResBench zoo: residual blocks, shortcut options and networks of the two ResNet papers.

Public API: ``register``, ``create_model``, ``list_models``, ``list_blocks``, ``model_card``,
``model_options``, ``ORDERING_BLOCKS``, ``complexity``, ``describe``, ``save``, ``load``, ``ShortcutKind``,
``write_atomically``, ``transforms`` and ``predict`` (saved weights classify image files).
"""

from __future__ import annotations

from zoo import blocks as _blocks  # noqa: F401  (registers the built-in blocks)
from zoo._registry import ModelCard, Published, list_blocks, list_models, register
from zoo.blocks import ORDERING_BLOCKS
from zoo.checkpoint import load, save
from zoo.complexity import Complexity, complexity
from zoo.convert import convert_torchvision_state_dict
from zoo.describe import Architecture, describe
from zoo.files import write_atomically
from zoo.inference import predict, transforms
from zoo.models import create_model, model_card, model_options
from zoo.resnet import ResidualUnit, ResNet
from zoo.shortcuts import ShortcutKind
from zoo.size import SizeEstimate, estimate
from zoo.vgg import VGG

__all__ = [
    "ORDERING_BLOCKS",
    "Architecture",
    "Complexity",
    "ModelCard",
    "Published",
    "ResNet",
    "ResidualUnit",
    "ShortcutKind",
    "SizeEstimate",
    "VGG",
    "complexity",
    "convert_torchvision_state_dict",
    "create_model",
    "describe",
    "estimate",
    "list_blocks",
    "list_models",
    "load",
    "model_card",
    "model_options",
    "predict",
    "register",
    "save",
    "transforms",
    "write_atomically",
]
