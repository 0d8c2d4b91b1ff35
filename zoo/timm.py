"""timm and the zoo, both ways.

Every zoo model in timm's registry: ``import zoo.timm``, then
``timm.create_model("resbench_resnet56", num_classes=100)``.

Registered under the ``resbench_`` prefix, so timm's own ``resnet50`` is never shadowed. The
entry points take timm's keyword arguments (``pretrained``, ``pretrained_cfg``,
``pretrained_cfg_overlay``, ``cache_dir``; ``drop_rate`` / ``drop_path_rate`` only at 0 and
``global_pool`` only "avg", which is what the zoo's networks do) and every ``zoo.create_model``
override. The models carry timm's interface (``zoo.interface``), so ``timm.data.resolve_data_config``
and timm's training scripts work on them. ``import zoo`` alone never imports timm.

And every timm network in the zoo: ``zoo.create_model("timm:resnet18d", num_classes=10)``
builds timm's ``resnet18d`` (no pretrained weights: a baseline trains from scratch on the
search's data and recipe), which ``zoo.complexity``, ``zoo.describe``, ``zoo.save`` and the
searches' ``--baselines`` take like any zoo name.
"""

from __future__ import annotations

import functools
from typing import Any

import timm
import torch.nn as nn
from timm.models import register_model

import zoo
from zoo._registry import TIMM_PREFIX, ModelCard, ModelEntry, Published, unknown_name_error

PREFIX = "resbench_"
__all__: list[str] = []  # timm's register_model lists each entry point here


def _entry_point(name: str) -> Any:
    def create(pretrained: bool = False, pretrained_cfg: Any = None, pretrained_cfg_overlay: dict[str, Any] | None = None, cache_dir: Any = None, **kwargs: Any) -> nn.Module:
        if pretrained:
            raise ValueError(f"{PREFIX}{name} has no pretrained weights to download; load a run's weights with zoo.load, or timm.create_model(..., checkpoint_path=...)")
        for key, neutral in (("drop_rate", 0.0), ("drop_path_rate", 0.0)):
            if kwargs.pop(key, neutral) not in (0, 0.0, None):
                raise ValueError(f"{key}: the zoo's networks have no dropout or stochastic depth (the papers' nets); only 0 is accepted")
        if kwargs.pop("global_pool", "avg") not in ("avg", None):
            raise ValueError("global_pool: the zoo's networks pool by average only")
        model = zoo.create_model(name, **kwargs)
        overlay = {**_as_dict(pretrained_cfg), **(pretrained_cfg_overlay or {})}
        if overlay:  # a caller's description of the input wins over the family's convention
            cfg = {**model.pretrained_cfg, **overlay}
            model.zoo_data = {
                "input_size": list(cfg["input_size"]), "interpolation": cfg["interpolation"], "crop_pct": cfg["crop_pct"],
                "crop_mode": cfg.get("crop_mode", "center"), "mean": list(cfg["mean"]), "std": list(cfg["std"]),
                "class_names": list(getattr(model, "zoo_data", {}).get("class_names", [])),
            }
        return model

    create.__name__ = create.__qualname__ = f"{PREFIX}{name}"
    create.__module__ = __name__
    create.__doc__ = f"zoo.create_model({name!r}, ...) under timm's create_model."
    return create


def _as_dict(cfg: Any) -> dict[str, Any]:
    if cfg is None or isinstance(cfg, str):
        return {}
    if isinstance(cfg, dict):
        return dict(cfg)
    return {key: value for key, value in cfg.to_dict().items() if key in ("input_size", "interpolation", "crop_pct", "crop_mode", "mean", "std")}


for _name in zoo.list_models():
    register_model(_entry_point(_name))


@functools.cache
def timm_model_entry(architecture: str) -> ModelEntry:
    """The zoo entry of timm's ``architecture``: built by ``timm.create_model`` with no pretrained
    weights; options ``num_classes`` and ``in_chans``; its card's size is timm's default input."""
    if architecture.startswith(PREFIX) or not timm.is_model(architecture):  # resbench_*: use the zoo's own name
        raise unknown_name_error("timm model", architecture, [name for name in timm.list_models() if not name.startswith(PREFIX)], "timm.list_models()")

    def build(num_classes: int = 1000, in_chans: int = 3) -> nn.Module:
        return timm.create_model(architecture, pretrained=False, num_classes=num_classes, in_chans=in_chans)

    build.__name__ = build.__qualname__ = f"timm_{architecture}"
    described = timm.get_pretrained_cfg(architecture)  # None for an architecture without one
    size = int(described.input_size[-1]) if described else 224
    card = ModelCard(f"{TIMM_PREFIX}{architecture}", "imagenet", "timm", None, None, None, size, 1000, Published(source=f"timm {timm.__version__}"))
    return ModelEntry(build, {"num_classes": 1000, "in_chans": 3}, card)
