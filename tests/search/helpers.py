"""Small real data sets written by tests: an ImageFolder of PNGs and a CIFAR-layout copy."""

from __future__ import annotations

import pickle
from pathlib import Path

import torch
from PIL import Image


def write_image_folder(root: Path, split: str, per_class: int, classes: int = 3, seed: int = 0) -> None:
    """Class k is an image dominated by colour channel k, so the labels are learnable."""
    generator = torch.Generator().manual_seed(seed)
    for label in range(classes):
        folder = root / split / f"class{label}"
        folder.mkdir(parents=True, exist_ok=True)
        for index in range(per_class):
            image = torch.randint(0, 80, (3, 32, 32), generator=generator, dtype=torch.uint8)
            image[label % 3] += 150
            Image.fromarray(image.permute(1, 2, 0).numpy()).save(folder / f"{index:04d}.png")


def write_cifar10_copy(root: Path, per_batch: int = 40) -> Path:
    """A tiny copy in torchvision's cifar-10-batches-py pickle format."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    generator = torch.Generator().manual_seed(0)

    def batch(name: str, count: int) -> None:
        data = torch.randint(0, 256, (count, 3 * 32 * 32), generator=generator, dtype=torch.uint8).numpy()
        labels = (torch.arange(count) % 10).tolist()
        with open(folder / name, "wb") as handle:
            pickle.dump({b"data": data, b"labels": labels}, handle)

    for i in range(1, 6):
        batch(f"data_batch_{i}", per_batch)
    batch("test_batch", 30)
    with open(folder / "batches.meta", "wb") as handle:
        pickle.dump({b"label_names": [f"c{i}".encode() for i in range(10)]}, handle)
    return root
