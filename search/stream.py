"""The streaming data path: batches decoded from the image files while the model trains.

Loader workers (``torch.utils.data.DataLoader``) open, decode and crop each image in uint8 and
collate uint8 batches, into pinned memory on CUDA; the next batch is copied to the device without
blocking while this one trains; flips, colour and normalisation run batched on the device. The
host never holds more than a few batches, so a folder of any size trains in bounded memory.

What a worker makes of a sample depends on the augmentation:

- ``random_resized_crop`` and ``scale`` draw their box from the original image, so the worker
  crops it (``search.views.training_crop``) with the sample's own random stream
  (``sample_rng(seed, epoch, index)``), and sends the flip and colour draws along with it;
- ``pad_crop`` and ``none`` crop from the image at rest, so the worker sends the image at rest and
  the device augments the batch exactly as the in-memory path does, from the run's generator: on
  these, the two paths train on the same pixels.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader

from search.data import DataError, FileSplit, channel_stats
from search.distributed import World
from search.views import ImageError, at_rest, crop_box, lighting_shift, sample_rng, training_crop

BOX_AUGMENTATIONS = ("random_resized_crop", "scale")  # cropped from the file, in the workers
PREFETCH_BATCHES = 2  # per worker: enough to hide a decode's jitter, little memory


@dataclass
class Batch:
    images: torch.Tensor  # uint8 (B, 3, S, S)
    labels: torch.Tensor  # int64 (B,)
    flips: torch.Tensor | None = None  # bool (B,): box augmentations' draws, applied on the device
    shifts: torch.Tensor | None = None  # float32 (B, 3): their colour draws (RGB, in [0, 1] units)
    error: str | None = None  # a file that would not decode; raised in the training process

    def pin_memory(self) -> Batch:  # DataLoader(pin_memory=True) calls this in its pinning thread
        if self.error is None:
            self.images, self.labels = self.images.pin_memory(), self.labels.pin_memory()
        return self

    def to(self, device: torch.device) -> Batch:
        move = lambda tensor: None if tensor is None else tensor.to(device, non_blocking=True)  # noqa: E731
        return Batch(move(self.images), move(self.labels), move(self.flips), move(self.shifts), self.error)


class TrainingFiles(torch.utils.data.Dataset):
    """Sample ``(epoch, index)``: its training crop (box augmentations) or its image at rest."""

    def __init__(self, split: FileSplit, augment: str, image_size: int, rest_size: int, flip: bool, lighting: bool, seed: int) -> None:
        self.files, self.labels = split.files, split.labels
        self.augment, self.image_size, self.rest_size, self.flip, self.lighting = augment, image_size, rest_size, flip, lighting
        self.seed = seed

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor | None, int, bool, tuple[float, float, float], str | None]:
        epoch, index = key
        path = self.files[index]
        try:
            if self.augment not in BOX_AUGMENTATIONS:
                return at_rest(path, self.rest_size), int(self.labels[index]), False, (0.0, 0.0, 0.0), None
            rng = sample_rng(self.seed, epoch, index)
            image = training_crop(path, self.image_size, lambda width, height: crop_box(self.augment, width, height, self.image_size, rng))
            flip = self.flip and bool(rng.random() < 0.5)
            shift = lighting_shift(rng) if self.lighting else (0.0, 0.0, 0.0)
            return image, int(self.labels[index]), flip, shift, None
        except ImageError as error:
            return None, int(self.labels[index]), False, (0.0, 0.0, 0.0), str(error)


class RestingFiles(torch.utils.data.Dataset):
    """Each file at rest: what evaluation crops from, and what channel statistics are taken of."""

    def __init__(self, files: Sequence[str], labels: torch.Tensor, rest_size: int) -> None:
        self.files, self.labels, self.rest_size = files, labels, rest_size

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor | None, int, bool, tuple[float, float, float], str | None]:
        try:
            return at_rest(self.files[index], self.rest_size), int(self.labels[index]), False, (0.0, 0.0, 0.0), None
        except ImageError as error:
            return None, int(self.labels[index]), False, (0.0, 0.0, 0.0), str(error)


def collate(samples: list[tuple[torch.Tensor | None, int, bool, tuple[float, float, float], str | None]]) -> Batch:
    """uint8 images stacked as they are (a quarter of float32's bytes to pin and copy)."""
    errors = [error for *_, error in samples if error is not None]
    if errors:
        return Batch(torch.empty(0, dtype=torch.uint8), torch.empty(0, dtype=torch.int64), error=errors[0])
    images, labels, flips, shifts, _ = zip(*samples, strict=True)
    return Batch(torch.stack(images), torch.tensor(labels, dtype=torch.int64), torch.tensor(flips, dtype=torch.bool), torch.tensor(shifts, dtype=torch.float32))


class EpochBatches:
    """The batch sampler of a run's loader: one epoch's batches of ``(epoch, index)`` keys, from a
    step on; set anew each epoch, so the workers (persistent) start once per run."""

    def __init__(self) -> None:
        self.batches: list[list[tuple[int, int]]] = []

    def set(self, epoch: int, order: torch.Tensor, batch_size: int, first_step: int, steps: int, world: World = World()) -> None:
        """``batch_size`` is the global batch; with several ranks, this one loads its part of each."""
        order_list = order.tolist()
        self.batches = [[(epoch, index) for index in world.part(order_list[step * batch_size : (step + 1) * batch_size])] for step in range(first_step, steps)]

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


def loader(dataset: torch.utils.data.Dataset, batches: Iterable[Sequence[object]], workers: int, device: torch.device, persistent: bool = False) -> DataLoader:
    """A loader over batches of sample keys; ``persistent`` keeps its workers between epochs."""
    return DataLoader(
        dataset, batch_sampler=batches, num_workers=workers, collate_fn=collate, pin_memory=device.type == "cuda",
        prefetch_factor=PREFETCH_BATCHES if workers else None, worker_init_fn=_one_thread, persistent_workers=persistent and workers > 0,
    )


def _one_thread(_: int) -> None:
    torch.set_num_threads(1)  # a worker decodes one image at a time; the trial's CPUs are shared out


def on_device(batches: Iterator[Batch], device: torch.device) -> Iterator[Batch]:
    """Batches on ``device``: the next one's copy is issued before this one is handed out, so on
    CUDA it overlaps the step (pinned memory, non-blocking). A file that failed is raised here."""
    pending: Batch | None = None
    for batch in batches:
        if batch.error is not None:
            raise DataError(batch.error)
        ready, pending = pending, batch.to(device)
        if ready is not None:
            yield ready
    if pending is not None:
        yield pending


def loader_workers(threads: int, device: torch.device) -> tuple[int, int]:
    """(loader workers, training threads) out of a trial's ``threads`` CPUs: on CUDA the training
    process needs one thread and the rest decode; on the CPU they share the CPUs half and half."""
    if device.type == "cuda":
        return max(1, threads - 1), 1
    workers = max(1, threads // 2)
    return workers, max(1, threads - workers)


def file_channel_stats(files: Sequence[str], rest_size: int, workers: int) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """``search.data.channel_stats`` of the files at rest, decoded by loader workers (and cached:
    the same files at the same size are measured once per machine)."""
    import hashlib
    import json

    import zoo
    from search.data import cache_root

    digest = hashlib.sha256(f"at-rest|{rest_size}|".encode() + "\n".join(files).encode()).hexdigest()[:20]
    cache = cache_root() / "stats" / f"{digest}.json"
    if cache.exists():
        stored = json.loads(cache.read_text())
        return tuple(stored["mean"]), tuple(stored["std"])  # type: ignore[return-value]
    dataset = RestingFiles(files, torch.zeros(len(files), dtype=torch.int64), rest_size)
    batches = [list(range(start, min(start + 64, len(files)))) for start in range(0, len(files), 64)]
    images = (batch.images for batch in on_device(iter(loader(dataset, batches, workers, torch.device("cpu"))), torch.device("cpu")))
    mean, std = channel_stats(images)
    cache.parent.mkdir(parents=True, exist_ok=True)
    zoo.write_atomically(cache, json.dumps({"mean": mean, "std": std}))
    return mean, std
