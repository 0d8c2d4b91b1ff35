"""Training recipes: typed, overridable field by field, from seconds (smoke) to the paper's."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from typing import Any, get_type_hints

from search.views import AUGMENTATIONS

SCHEDULES = ("multistep", "onecycle", "cosine")
PRECISIONS = ("auto", "fp32", "bf16")
DATA_PATHS = ("auto", "memory", "stream")
EVAL_CROPS = (1, 10)
FAMILIES = ("cifar", "imagenet")  # zoo model cards' families: each has its own budgets


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
    # Carved from train when there is no val/ folder. 0: no validation split at all, for a fixed
    # schedule that selects nothing (He et al. trained Table 6 on all 45k non-test images): every
    # non-test image trains, the final weights are the result, the test split ranks; ASHA and
    # sampled searches have nothing to work on, so only search.train and planned grids take it.
    val_size: int = 5000
    test_size: int = 5000  # carved from train when there is no test set
    image_size: int = 32  # the training crop's side, in pixels
    augment: str = "pad_crop"  # pad_crop | random_resized_crop | scale (the paper's ImageNet) | none (center crop)
    crop_padding: int = 4  # pad_crop: zero padding, in pixels, before the random crop
    flip: bool = True
    lighting: bool = False  # the paper's colour augmentation (PCA lighting noise, Krizhevsky et al.)
    eval_resize: int = 32  # evaluation: the shorter side resized to this, then the central square
    eval_crop: int = 32  # ... then its center crop of this side
    eval_crops: int = 1  # 1, or 10: corners, center and their flips, probabilities averaged (Tables 2-3)
    data_path: str = "auto"  # memory (decoded once), stream (from the files), auto: memory when it fits
    precision: str = "auto"  # auto: bf16 autocast where the device has fast bf16 (CUDA, CPUs with AMX)
    eval_batch_size: int = 512
    # Several workers (torchrun, --workers-per-trial): BatchNorm statistics over the global batch
    # (SyncBatchNorm, CUDA only) instead of each worker's part, which is what the paper did.
    sync_bn: bool = False

    def __post_init__(self) -> None:
        for name, value in dataclasses.asdict(self).items():
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"recipe field {name} must be a finite number, got {value}")
        positive = ("epochs", "batch_size", "eval_batch_size", "test_size", "image_size", "eval_resize", "eval_crop")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"recipe field {name} must be positive, got {getattr(self, name)}")
        for name in ("lr", "momentum", "weight_decay", "label_smoothing", "warmup_fraction", "warmup_lr", "train_subset", "crop_padding", "warmup_iterations", "val_size"):
            if getattr(self, name) < 0:
                raise ValueError(f"recipe field {name} must not be negative, got {getattr(self, name)}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}; valid: {', '.join(SCHEDULES)}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"unknown precision {self.precision!r}; valid: {', '.join(PRECISIONS)}")
        if self.augment not in AUGMENTATIONS:
            raise ValueError(f"unknown augment {self.augment!r}; valid: {', '.join(AUGMENTATIONS)}")
        if self.data_path not in DATA_PATHS:
            raise ValueError(f"unknown data_path {self.data_path!r}; valid: {', '.join(DATA_PATHS)}")
        if self.eval_crops not in EVAL_CROPS:
            raise ValueError(f"recipe field eval_crops must be 1 or 10, got {self.eval_crops}")
        if self.eval_crop > self.eval_resize:
            raise ValueError(f"recipe field eval_crop {self.eval_crop} is larger than eval_resize {self.eval_resize}: the crop is taken from the resized image")
        if self.augment in ("pad_crop", "none") and self.image_size > self.eval_resize + 2 * self.crop_padding * (self.augment == "pad_crop"):
            raise ValueError(f"recipe field image_size {self.image_size} is larger than the stored image ({self.eval_resize} px, eval_resize) that augment {self.augment} crops from; raise eval_resize or use random_resized_crop")
        if not all(0 < m < 1 for m in self.milestones):
            raise ValueError(f"milestones are fractions of training in (0, 1), got {self.milestones}")
        for name in ("label_smoothing", "warmup_fraction", "momentum"):
            if getattr(self, name) >= 1:
                raise ValueError(f"recipe field {name} must be below 1, got {getattr(self, name)}")
        if 0 < self.train_subset < self.batch_size:
            raise ValueError(f"recipe field train_subset {self.train_subset} is smaller than batch_size {self.batch_size}: not one full batch to train on")

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))


CIFAR_BUDGETS: dict[str, Recipe] = {
    # Seconds: a few hundred images, for tests and CI.
    "smoke": Recipe(epochs=2, batch_size=64, lr=0.05, schedule="onecycle", warmup_fraction=0.3, train_subset=512, val_size=256, test_size=256, eval_batch_size=256),
    # Minutes on a CPU: one-cycle with nesterov, label smoothing and bf16 autocast where it is fast.
    # The epochs are the same for every depth, so deeper nets cost more, as they should.
    "quick": Recipe(epochs=17, batch_size=256, lr=0.4, nesterov=True, weight_decay=5e-4, label_smoothing=0.1, schedule="onecycle", warmup_fraction=0.25),
    # He et al. 2016, section 4.2: 64k iterations of batch 128 on a 45k split is 182 epochs; lr /10
    # at 32k and 48k iterations; ResNet-110 (and deeper) warms up at 0.01 for about 400 iterations.
    "paper": Recipe(epochs=182, batch_size=128, lr=0.1, weight_decay=1e-4, schedule="multistep", milestones=(0.5, 0.75), warmup_iterations=400, precision="fp32"),
}


# ImageNet-family nets (224-pixel stems): the same three budgets at their own resolution.
IMAGENET_VIEW = dict(augment="random_resized_crop", crop_padding=0, eval_resize=256, eval_crop=224)
IMAGENET_BUDGETS: dict[str, Recipe] = {
    # Seconds: 64-pixel crops of a few hundred images.
    "smoke": dataclasses.replace(CIFAR_BUDGETS["smoke"], **{**IMAGENET_VIEW, "image_size": 64, "eval_resize": 73, "eval_crop": 64}),
    # What a user can afford: 16 epochs of one-cycle SGD at 176-pixel crops, evaluated at 224
    # (the smaller training crop is cheaper and evaluates well a size up: Touvron et al. 2019,
    # "Fixing the train-test resolution discrepancy"); the shape of FFCV's published 16-epoch
    # ResNet-50 configuration. Not yet measured by ResBench on ImageNet.
    "quick": Recipe(
        epochs=16, batch_size=256, lr=0.4, nesterov=True, weight_decay=5e-5, label_smoothing=0.1, schedule="onecycle",
        warmup_fraction=0.125, val_size=10000, test_size=10000, image_size=176, **IMAGENET_VIEW,
    ),
    # He et al. 2016, section 3.4: SGD, batch 256, lr 0.1, momentum 0.9, weight decay 1e-4, no
    # dropout, 60x10^4 iterations (120 epochs of ImageNet's 1.28M images); scale augmentation
    # (shorter side in [256, 480], random 224 crop, flip) with colour augmentation; 10-crop tests.
    # Deviation: the paper divided the lr by 10 "when the error plateaus", which a resumable run
    # cannot replay; here at fixed points, every 30 epochs (torchvision's classic cadence).
    "paper": Recipe(
        epochs=120, batch_size=256, lr=0.1, weight_decay=1e-4, schedule="multistep", milestones=(0.25, 0.5, 0.75),
        precision="fp32", val_size=10000, test_size=10000, image_size=224, lighting=True, eval_crops=10,
        **{**IMAGENET_VIEW, "augment": "scale"},
    ),
}
BUDGETS: dict[str, dict[str, Recipe]] = {"cifar": CIFAR_BUDGETS, "imagenet": IMAGENET_BUDGETS}
BUDGET_NAMES = tuple(CIFAR_BUDGETS)  # every family has the same three: --budget's choices


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


def resolve_recipe(budget: str, overrides: dict[str, Any] | None = None, family: str = "cifar") -> Recipe:
    """The budget's recipe for a model ``family`` (its own resolution and augmentation) with
    ``overrides`` (typed values or command-line strings) applied."""
    if family not in BUDGETS:
        raise ValueError(f"unknown model family {family!r}; valid: {', '.join(BUDGETS)}")
    if budget not in BUDGETS[family]:
        raise ValueError(f"unknown budget {budget!r}; valid: {', '.join(BUDGETS[family])}")
    overrides = dict(overrides or {})
    valid = recipe_fields()
    for key, value in list(overrides.items()):
        if key not in valid:
            raise ValueError(f"unknown recipe field {key!r}; valid: {', '.join(valid)}")
        if isinstance(value, str):
            overrides[key] = parse_value(key, value)
        elif isinstance(value, list):
            overrides[key] = tuple(value)
    return dataclasses.replace(BUDGETS[family][budget], **overrides)
