"""Training recipes: typed, overridable field by field, from seconds (smoke) to the paper's."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from typing import Any, get_type_hints

SCHEDULES = ("multistep", "onecycle", "cosine")
PRECISIONS = ("auto", "fp32", "bf16")


@dataclass(frozen=True)
class Recipe:
    epochs: int
    batch_size: int = 128
    lr: float = 0.1  # peak learning rate for this batch size
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 1e-4
    label_smoothing: float = 0.0
    schedule: str = "multistep"  # multistep | onecycle | cosine (torch.optim.lr_scheduler)
    milestones: tuple[float, ...] = (0.5, 0.75)  # multistep: fractions of training where lr /= 10
    warmup_fraction: float = 0.0  # onecycle / cosine: fraction of the steps spent ramping up to lr
    warmup_iterations: int = 0  # multistep: steps at warmup_lr first, for nets at least warmup_min_depth deep
    warmup_lr: float = 0.01
    warmup_min_depth: int = 110
    train_subset: int = 0  # images of the training split used (0 = all); a smaller budget
    val_size: int = 5000  # carved from train when there is no val/ folder
    test_size: int = 5000  # carved from train when there is no test set
    crop_padding: int = 4  # pad-and-random-crop, in pixels; 0 disables
    flip: bool = True
    precision: str = "auto"  # auto: bf16 autocast where the device has fast bf16 (CUDA, CPUs with AMX)
    eval_batch_size: int = 512

    def __post_init__(self) -> None:
        for name, value in dataclasses.asdict(self).items():
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"recipe field {name} must be a finite number, got {value}")
        positive = ("epochs", "batch_size", "eval_batch_size", "val_size", "test_size")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"recipe field {name} must be positive, got {getattr(self, name)}")
        for name in ("lr", "momentum", "weight_decay", "label_smoothing", "warmup_fraction", "warmup_lr", "train_subset", "crop_padding", "warmup_iterations"):
            if getattr(self, name) < 0:
                raise ValueError(f"recipe field {name} must not be negative, got {getattr(self, name)}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}; valid: {', '.join(SCHEDULES)}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"unknown precision {self.precision!r}; valid: {', '.join(PRECISIONS)}")
        if not all(0 < m < 1 for m in self.milestones):
            raise ValueError(f"milestones are fractions of training in (0, 1), got {self.milestones}")
        if self.label_smoothing >= 1 or self.warmup_fraction >= 1 or self.momentum >= 1:
            raise ValueError(f"label_smoothing, warmup_fraction and momentum must be below 1, got {self.label_smoothing}, {self.warmup_fraction}, {self.momentum}")
        if 0 < self.train_subset < self.batch_size:
            raise ValueError(f"recipe field train_subset {self.train_subset} is smaller than batch_size {self.batch_size}: not one full batch to train on")

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))


BUDGETS: dict[str, Recipe] = {
    # Seconds: a few hundred images, for tests and CI.
    "smoke": Recipe(epochs=2, batch_size=64, lr=0.05, schedule="onecycle", warmup_fraction=0.3, train_subset=512, val_size=256, test_size=256, eval_batch_size=256),
    # Minutes on a CPU: one-cycle with nesterov, label smoothing and bf16 autocast where it is fast.
    # The epochs are the same for every depth, so deeper nets cost more, as they should.
    "quick": Recipe(epochs=17, batch_size=256, lr=0.4, nesterov=True, weight_decay=5e-4, label_smoothing=0.1, schedule="onecycle", warmup_fraction=0.25),
    # He et al. 2016, section 4.2: 64k iterations of batch 128 on a 45k split is 182 epochs; lr /10
    # at 32k and 48k iterations; ResNet-110 (and deeper) warms up at 0.01 for about 400 iterations.
    "paper": Recipe(epochs=182, batch_size=128, lr=0.1, weight_decay=1e-4, schedule="multistep", milestones=(0.5, 0.75), warmup_iterations=400, precision="fp32"),
}


def recipe_fields() -> list[str]:
    return [field.name for field in dataclasses.fields(Recipe)]


def parse_value(field: str, text: str) -> Any:
    """Convert a command-line string to the field's type, with a one-line error when it is not one."""
    kind = get_type_hints(Recipe)[field]
    try:
        if kind is bool:
            if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            return text.lower() in ("true", "1", "yes")
        if kind is int:
            return int(text)
        if kind is float:
            return float(text)
        if kind == tuple[float, ...]:
            return tuple(float(part) for part in text.split(",") if part)
    except ValueError:
        raise ValueError(f"recipe field {field} expects {getattr(kind, '__name__', kind)}, got {text!r}") from None
    return text


def resolve_recipe(budget: str, overrides: dict[str, Any] | None = None) -> Recipe:
    """The budget's recipe with ``overrides`` (typed values or command-line strings) applied."""
    if budget not in BUDGETS:
        raise ValueError(f"unknown budget {budget!r}; valid: {', '.join(BUDGETS)}")
    overrides = dict(overrides or {})
    valid = recipe_fields()
    for key, value in list(overrides.items()):
        if key not in valid:
            raise ValueError(f"unknown recipe field {key!r}; valid: {', '.join(valid)}")
        if isinstance(value, str):
            overrides[key] = parse_value(key, value)
        elif isinstance(value, list):
            overrides[key] = tuple(value)
    return dataclasses.replace(BUDGETS[budget], **overrides)
