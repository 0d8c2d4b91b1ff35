"""Measurements of a model on its device: accuracy, inference throughput, peak memory, and the
training rate the search plan's estimate is priced with."""

from __future__ import annotations

import hashlib
import json
import resource
import time
from collections.abc import Iterator
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

import zoo
from search.augment import Normalize, evaluation_crops
from search.data import FileSplit, Split, cache_root
from search.provenance import autocast, hardware_name

INFERENCE_BATCH = 256


def split_batches(split: Split | FileSplit, batch_size: int, device: torch.device, workers: int = 1) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(images at rest, labels) batches of a split, in order, on ``device``: sliced from memory,
    or decoded from the files by loader workers."""
    if isinstance(split, Split):
        for start in range(0, len(split), batch_size):
            yield split.images[start : start + batch_size].to(device, non_blocking=True), split.labels[start : start + batch_size].to(device)
        return
    from search.stream import batches_at_rest

    for batch in batches_at_rest(split.files, split.labels, split.rest_size, batch_size, workers, device):
        yield batch.images, batch.labels


@torch.no_grad()
def evaluate(model: nn.Module, split: Split | FileSplit, normalize: Normalize, batch_size: int, device: torch.device, precision: str, crop: int | None = None, crops: int = 1, workers: int = 1) -> float:
    """Top-1 accuracy as a fraction, in eval mode, without augmentation: the ``crop`` center crop
    of each image at rest (default: all of it), or the mean probabilities of its ten crops.

    Every batch has the same shape: the ragged last one is padded with blank images whose
    predictions are dropped (in eval mode each image's output depends on that image alone), so a
    compiled model evaluates with one graph instead of compiling another for the remainder."""
    was_training = model.training
    model.eval()
    correct = torch.zeros((), dtype=torch.int64, device=device)
    batch_size = max(1, min(batch_size, len(split)))  # a split smaller than a batch is one batch
    for images, labels in split_batches(split, batch_size, device, workers):
        count = len(images)
        if count < batch_size:
            images = torch.cat([images, images.new_zeros((batch_size - count, *images.shape[1:]))])
        views = evaluation_crops(images, crop or images.shape[-1], crops)
        with autocast(device, precision):
            logits = model(normalize(views)).float()
        if crops > 1:
            logits = logits.view(crops, batch_size, -1).softmax(-1).mean(0)  # averaged probabilities
        correct += (logits[:count].argmax(1) == labels).sum()
    model.train(was_training)
    return int(correct) / max(1, len(split))  # one wait for the device, at the end


@torch.no_grad()
def inference_throughput(model: nn.Module, normalize: Normalize, image_size: int, device: torch.device, precision: str, batch_size: int = INFERENCE_BATCH, min_seconds: float = 0.5) -> float:
    """Eval-mode images/s at ``batch_size`` on the trial's device (random pixels: speed only)."""
    model.eval()
    images = torch.randint(0, 256, (batch_size, 3, image_size, image_size), dtype=torch.uint8, device=device)
    with autocast(device, precision):
        model(normalize(images))  # warm-up: allocator, kernels selection
        synchronize(device)
        start, batches = time.perf_counter(), 0
        # At least half a second of batches: a smoke trial of a big net pays for one, not three.
        while batches < 1 or time.perf_counter() - start < min_seconds:
            model(normalize(images))
            batches += 1
        synchronize(device)
    return batches * batch_size / (time.perf_counter() - start)


def calibrated_macs_per_second(device: torch.device, precision: str, threads: int) -> float:
    """``calibrate_macs_per_second``, measured once per machine, device, precision, thread count and
    torch version and then read from the data cache: every search start printed its estimate
    after seconds of training a ResNet-20 (7 s on a 2-core CPU), a cost each resume paid again."""
    key = f"{hardware_name(device)}|{device.type}|{precision}|{threads}|{torch.__version__}"
    cache = cache_root() / "calibration" / f"{hashlib.sha256(key.encode()).hexdigest()[:20]}.json"
    if cache.exists():
        return float(json.loads(cache.read_text())["macs_per_second"])
    rate = calibrate_macs_per_second(device, precision, threads)
    cache.parent.mkdir(parents=True, exist_ok=True)
    zoo.write_atomically(cache, json.dumps({"key": key, "macs_per_second": rate}))
    return rate


def calibrate_macs_per_second(device: torch.device, precision: str, threads: int, steps: int = 4) -> float:
    """Training throughput of a ResNet-20 here, in MACs/s (forward MACs x images / second), for
    the search plan's wall-time estimate."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        model = zoo.create_model("resnet20").to(device=device, memory_format=torch.channels_last)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
        images = torch.randn(128, 3, 32, 32, device=device).contiguous(memory_format=torch.channels_last)
        labels = torch.randint(0, 10, (128,), device=device)
        start = 0.0
        for step in range(steps + 1):
            if step == 1:  # the first step pays for kernel selection
                synchronize(device)
                start = time.perf_counter()
            with autocast(device, precision):
                loss = F.cross_entropy(model(images).float(), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        synchronize(device)
        return zoo.complexity("resnet20").macs * 128 * steps / (time.perf_counter() - start)
    finally:
        torch.set_num_threads(previous)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_memory_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # Linux reports KiB


def process_tree(root: int) -> set[int]:
    """``root`` and every process below it (a trial's loader workers, Ray's processes), from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    family, grown = {root}, True
    while grown:
        grown = False
        for pid, parent in parents.items():
            if parent in family and pid not in family:
                family.add(pid)
                grown = True
    return family


def tree_memory_bytes(root: int, fields: tuple[str, ...] = ("Pss",)) -> int:
    """The memory of a process tree, from /proc/PID/smaps_rollup: by default its proportional set
    size (each shared page, such as the libraries forked workers share with their parent, split
    between its holders); ``("Private_Clean", "Private_Dirty")`` counts only pages no other
    process maps, which does not depend on what else runs beside it."""
    total = 0
    for pid in process_tree(root):
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.split(":")[0] in fields:
                    total += int(line.split()[1]) * 1024
        except OSError:
            pass  # a process that ended between the listing and the read
    return total
