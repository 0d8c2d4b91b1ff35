"""From an image file to class names with nothing but a saved model: the evaluation transform
rebuilt from the data description the weights carry (``model.zoo_data``, see ``zoo.checkpoint``).

    python -m zoo predict model_final.safetensors cat.jpg dog.png
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn


def data_of(model: nn.Module) -> dict[str, Any]:
    data = getattr(model, "zoo_data", None)
    if data is None:
        raise ValueError("the model carries no data description (zoo_data): it was not saved by a search.train run")
    return data


def transforms(model: nn.Module) -> Any:
    """The evaluation transform for a PIL image: resize as the training data was (squashed to the
    input size, or resized and center-cropped by ``crop_pct``), to a float tensor, normalised."""
    from torchvision.transforms import InterpolationMode, v2

    data = data_of(model)
    _, height, width = data["input_size"]
    interpolation = InterpolationMode(data["interpolation"])
    if data["crop_mode"] == "squash":
        resize = [v2.Resize((height, width), interpolation=interpolation)]
    else:  # "center", as timm: the shorter side to size / crop_pct, then the center crop
        resize = [v2.Resize(round(height / data["crop_pct"]), interpolation=interpolation), v2.CenterCrop((height, width))]
    return v2.Compose([*resize, v2.PILToTensor(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(data["mean"], data["std"])])


@dataclass(frozen=True)
class Prediction:
    path: str
    top: list[tuple[str, float]]  # (class name, probability), most likely first


def predict(model: nn.Module, paths: list[str | os.PathLike[str]], top: int = 5) -> list[Prediction]:
    """The ``top`` most likely classes of each image file (opened with Pillow, as RGB)."""
    from PIL import Image, UnidentifiedImageError

    transform, names = transforms(model), data_of(model)["class_names"]
    batch = []
    for path in paths:
        try:
            with Image.open(path) as handle:
                batch.append(transform(handle.convert("RGB")))
        except (OSError, UnidentifiedImageError) as error:
            raise ValueError(f"cannot read image {path}: {str(error).splitlines()[0][:120]}") from None
    model.eval()
    parameter = next(model.parameters())
    with torch.no_grad():
        probabilities = model(torch.stack(batch).to(parameter.device)).float().softmax(dim=1).cpu()
    best = probabilities.topk(min(top, probabilities.shape[1]), dim=1)
    return [
        Prediction(str(path), [(names[int(index)] if names else str(int(index)), float(value)) for value, index in zip(values, indices)])
        for path, values, indices in zip(paths, best.values, best.indices)
    ]
