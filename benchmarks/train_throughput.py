"""Training images/s of ``search.train``'s loop against a bare PyTorch loop and a torchvision
DataLoader with PIL transforms: same model, batch size, threads and data, side by side in one run.

    python benchmarks/train_throughput.py --data ../shared/datasets/cifar10-jpeg [--model resnet20] [--seconds 40]

Run it on an otherwise idle machine. Each contender trains for ``--seconds`` after a warm-up; the
ratios are what the README reports.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import zoo
from search.augment import Normalize, random_crop_flip
from search.config import TrialConfig
from search.data import DataError, load_dataset
from search.provenance import resolve_precision
from search.train import train
from zoo.commandline import OneLineParser


def timed_training(model_name: str, batches: object, precision: str, seconds: float) -> float:
    """Train on (images, labels) batches for ``seconds`` after 3 warm-up steps; images/s."""
    torch.manual_seed(0)
    model = zoo.create_model(model_name).to(memory_format=torch.channels_last).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    seen, start = 0, 0.0
    for step, (x, y) in enumerate(batches):  # type: ignore[call-overload]
        if step == 3:
            start, seen = time.perf_counter(), 0
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = F.cross_entropy(model(x.contiguous(memory_format=torch.channels_last)).float(), y, label_smoothing=0.1)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        seen += len(y)
        if step >= 3 and time.perf_counter() - start >= seconds:
            return seen / (time.perf_counter() - start)
    raise RuntimeError("ran out of batches")


def bare_loop(images: torch.Tensor, labels: torch.Tensor, model_name: str, batch: int, seconds: float, precision: str) -> float:
    """The least a PyTorch loop can do with tensor augmentation: no checkpoints, no metrics."""
    generator = torch.Generator().manual_seed(0)
    mean = images[:5000].float().mean(dim=(0, 2, 3)) / 255
    std = images[:5000].float().std(dim=(0, 2, 3)) / 255
    normalize = Normalize(tuple(mean.tolist()), tuple(std.tolist()), torch.device("cpu"), channels_last=True)

    def batches():  # endless shuffled epochs
        while True:
            order = torch.randperm(len(labels), generator=generator)
            for start in range(0, len(labels) - batch + 1, batch):
                index = order[start : start + batch]
                yield normalize(random_crop_flip(images[index], 4, True, generator)), labels[index]

    return timed_training(model_name, batches(), precision, seconds)


def dataloader_loop(root: Path, model_name: str, batch: int, seconds: float, precision: str) -> float:
    """The common pipeline: ImageFolder + PIL transforms in DataLoader workers."""
    import torchvision.transforms as T
    from torchvision.datasets import ImageFolder

    transform = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize((0.49, 0.48, 0.45), (0.25, 0.24, 0.26))])
    loader = torch.utils.data.DataLoader(ImageFolder(str(root / "train"), transform), batch_size=batch, shuffle=True, num_workers=1, drop_last=True, persistent_workers=True)

    def batches():  # endless epochs of the DataLoader
        while True:
            yield from loader

    return timed_training(model_name, batches(), precision, seconds)


def harness_loop(data: str, model_name: str, batch: int, seconds: float, threads: int, out: Path) -> float:
    """search.train itself (checkpoints, metrics, validation excluded from its images/s)."""
    data_set = load_dataset(data, data_seed=0)
    per_second_guess = 700 if model_name == "resnet20" else 200
    epochs = 1
    subset = int(per_second_guess * seconds)
    config = TrialConfig(model=model_name, data=data, budget="quick", recipe_overrides={"epochs": epochs, "batch_size": batch, "train_subset": min(subset, len(data_set.train))}, threads=threads)
    summary = train(config, out, log=None, dataset=data_set)
    return float(summary["images_per_second"])


def main() -> None:
    parser = OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="an ImageFolder root with train/ (the DataLoader contender reads its files)")
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--seconds", type=float, default=40)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    precision = resolve_precision("auto", torch.device("cpu"))
    try:
        data = load_dataset(args.data, data_seed=0)
    except DataError as error:
        parser.error(str(error))
    import tempfile

    with tempfile.TemporaryDirectory() as scratch:
        harness = harness_loop(args.data, args.model, args.batch, args.seconds, args.threads, Path(scratch) / "run")
    bare = bare_loop(data.train.images, data.train.labels, args.model, args.batch, args.seconds, precision)
    loader = dataloader_loop(Path(args.data), args.model, args.batch, args.seconds, precision)
    print(f"{args.model}, batch {args.batch}, {args.threads} threads, {precision}, {args.seconds:.0f} s each")
    print(f"{'contender':<36}{'images/s':>10}{'vs bare':>10}")
    for name, rate in (("search.train loop", harness), ("bare PyTorch loop (tensor aug)", bare), ("DataLoader + PIL transforms", loader)):
        print(f"{name:<36}{rate:>10.0f}{rate / bare:>10.2f}")


if __name__ == "__main__":
    main()
