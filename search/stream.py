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

Where a JPEG training crop is decoded is how a run executes (``DECODE_PLACES``), not what it
computes: ``workers`` decode it (``search.views.training_crop``: Pillow at a reduced DCT scale
where the box allows, else torchvision's decoder);
``device`` has the workers send the file's bytes with the box they drew, and the training process
decodes the whole batch at once on its device (``torchvision.io.decode_jpeg``: batched nvJPEG on
CUDA) and resizes each box there. The boxes, flips and colours are the same either way; the
pixels differ by the decoders' and resamplers' rounding.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch.utils.data import DataLoader

from search.data import DataError, FileSplit, PathList, channel_stats
from search.distributed import World
from search.views import (
    ImageError,
    at_rest,
    crop_box,
    decode_jpeg_or_none,
    decode_jpegs,
    jpeg_header,
    lighting_shift,
    sample_rng,
    training_crop,
)

BOX_AUGMENTATIONS = ("random_resized_crop", "scale")  # cropped from the file, in the workers
PREFETCH_BATCHES = 2  # per worker: enough to hide a decode's jitter, little memory
DECODE_PLACES = ("workers", "device")  # where JPEG training crops are decoded (module docstring)
DECODE_BATCH = 256  # files at rest per worker batch: few batches to send back, each small
# Loader workers start by fork on Linux whatever Python's default (forkserver from 3.14): a forked
# worker starts at once with the dataset it was forked with, where a fork server's worker imports
# torch again and is sent the dataset pickled, each time a loader starts (evaluation's, every epoch
# on the streaming path). benchmarks/worker_start.py, 50,000 CIFAR files, 2 workers, idle 2-core
# Xeon: 0.11 s to the first batch by fork, 3.5 s by forkserver, 3.9 s by spawn. The threads alive
# at a fork (the lease's heartbeat, a pinning thread, Ray's) hold no lock a worker takes: it reads
# files, fills tensors and sends them.
WORKER_START = "fork" if sys.platform == "linux" else None  # elsewhere the platform's own


def check_decode(place: str) -> str:
    if place not in DECODE_PLACES:
        raise ValueError(f"unknown --decode {place!r}; valid: {', '.join(DECODE_PLACES)}")
    return place


class Sample(NamedTuple):
    """What a loader worker makes of one file."""

    image: torch.Tensor | None  # uint8 (3, S, S); None: encoded (the device decodes it) or failed
    label: int
    flip: bool = False
    shift: tuple[float, float, float] = (0.0, 0.0, 0.0)
    error: str | None = None  # a file that would not decode, named
    encoded: torch.Tensor | None = None  # the JPEG file's bytes (uint8, 1-D), for the device to decode
    box: tuple[float, float, float, float] | None = None  # its crop (x1, y1, x2, y2) in the file's pixels
    path: str = ""
    size: int = 0  # the training crop's side, for an encoded sample


@dataclass
class Batch:
    images: torch.Tensor  # uint8 (B, 3, S, S); the encoded samples' places hold zeros until decoded
    labels: torch.Tensor  # int64 (B,)
    flips: torch.Tensor | None = None  # bool (B,): box augmentations' draws, applied on the device
    shifts: torch.Tensor | None = None  # float32 (B, 3): their colour draws (RGB, in [0, 1] units)
    error: str | None = None  # a file that would not decode; raised in the training process
    # JPEGs the training process decodes (decode "device"): their bytes (on the host, where the
    # decoder reads them), their places in the batch, their boxes and files (to name a bad one).
    encoded: list[torch.Tensor] | None = None
    encoded_at: torch.Tensor | None = None
    boxes: torch.Tensor | None = None  # float32 (n, 4): x1, y1, x2, y2 in each file's pixels
    paths: list[str] | None = None

    def pin_memory(self) -> Batch:  # DataLoader(pin_memory=True) calls this in its pinning thread
        if self.error is None:
            self.images, self.labels = self.images.pin_memory(), self.labels.pin_memory()
        return self

    def to(self, device: torch.device) -> Batch:
        move = lambda tensor: None if tensor is None else tensor.to(device, non_blocking=True)  # noqa: E731
        return Batch(move(self.images), move(self.labels), move(self.flips), move(self.shifts), self.error, self.encoded, move(self.encoded_at), move(self.boxes), self.paths)

    def decoded(self) -> Batch:
        """The batch with its encoded JPEGs decoded on its device, as one batched call, and each
        box resized there to the crop's side; a file that fails the batched decoder (CMYK, a PNG
        named .jpg) is cropped by Pillow as the workers would, and one that fails that is named."""
        if not self.encoded:
            return self
        assert self.encoded_at is not None and self.boxes is not None and self.paths is not None
        device, side = self.images.device, self.images.shape[-1]
        try:
            pictures: list[torch.Tensor | None] = list(decode_jpegs(self.encoded, device))
        except RuntimeError:  # the batched call fails as a whole: find which file, one at a time
            pictures = [decode_jpeg_or_none(data, device) for data in self.encoded]
        crops = []
        for picture, box, path in zip(pictures, self.boxes, self.paths, strict=True):
            if picture is None:
                left, top, right, bottom = box.tolist()
                try:
                    crops.append(training_crop(path, side, lambda _w, _h: (left, top, right - left, bottom - top)).to(device))
                except ImageError as error:
                    raise DataError(str(error)) from None
            else:
                crops.append(_resize_box(picture, box, side))
        self.images[self.encoded_at] = torch.stack(crops)  # this batch's own tensor, made by collate
        return Batch(self.images, self.labels, self.flips, self.shifts)


def _resize_box(picture: torch.Tensor, box: torch.Tensor, side: int) -> torch.Tensor:
    """The box (x1, y1, x2, y2) of a decoded uint8 picture, resized to ``side`` square: bilinear
    samples averaged over each output pixel's footprint (roi_align's adaptive sampling, as many
    samples as the box has pixels per output pixel: no aliasing however large the photo), rounded
    to uint8 as the workers' crops are."""
    from torchvision.ops import roi_align

    indexed = torch.cat([box.new_zeros(1), box.to(torch.float32)])[None]
    crop = roi_align(picture[None].float(), indexed, output_size=side, spatial_scale=1.0, sampling_ratio=0, aligned=True)[0]
    return crop.round_().clamp_(0, 255).to(torch.uint8)


class TrainingFiles(torch.utils.data.Dataset):
    """Sample ``(epoch, index)``: its training crop (box augmentations) or its image at rest; with
    ``decode="device"``, a JPEG's crop is sent encoded, with its box, for the device to decode."""

    def __init__(self, split: FileSplit, augment: str, image_size: int, rest_size: int, flip: bool, lighting: bool, seed: int, decode: str = "workers") -> None:
        self.files, self.labels = split.files, split.labels
        self.augment, self.image_size, self.rest_size, self.flip, self.lighting = augment, image_size, rest_size, flip, lighting
        self.seed, self.decode = seed, decode

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, key: tuple[int, int]) -> Sample:
        epoch, index = key
        path, label = self.files[index], int(self.labels[index])
        try:
            if self.augment not in BOX_AUGMENTATIONS:
                return Sample(at_rest(path, self.rest_size), label)
            rng = sample_rng(self.seed, epoch, index)
            box_of = lambda width, height: crop_box(self.augment, width, height, self.image_size, rng)  # noqa: E731
            if self.decode == "device" and (header := jpeg_header(path)) is not None:
                data, (width, height) = header
                left, top, box_w, box_h = box_of(width, height)  # drawn first, as the workers' crop draws it
                encoded = torch.frombuffer(bytearray(data), dtype=torch.uint8)
                return Sample(None, label, *self._colour_draws(rng), encoded=encoded, box=(left, top, left + box_w, top + box_h), path=path, size=self.image_size)
            image = training_crop(path, self.image_size, box_of)
            return Sample(image, label, *self._colour_draws(rng))
        except ImageError as error:
            return Sample(None, label, error=str(error))

    def _colour_draws(self, rng) -> tuple[bool, tuple[float, float, float]]:  # rng: numpy Generator
        flip = self.flip and bool(rng.random() < 0.5)
        return flip, lighting_shift(rng) if self.lighting else (0.0, 0.0, 0.0)


class RestingFiles(torch.utils.data.Dataset):
    """Each file at rest: what evaluation crops from, and what channel statistics are taken of."""

    def __init__(self, files: Sequence[str], labels: torch.Tensor, rest_size: int) -> None:
        self.files, self.labels, self.rest_size = PathList.of(files), labels, rest_size  # not a tuple: see PathList

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> Sample:
        try:
            return Sample(at_rest(self.files[index], self.rest_size), int(self.labels[index]))
        except ImageError as error:
            return Sample(None, int(self.labels[index]), error=str(error))


def collate(samples: list[Sample]) -> Batch:
    """uint8 images stacked as they are (a quarter of float32's bytes to pin and copy), channels
    last; encoded JPEGs travel as their bytes, their places left zero for the device to fill."""
    errors = [sample.error for sample in samples if sample.error is not None]
    if errors:
        return Batch(torch.empty(0, dtype=torch.uint8), torch.empty(0, dtype=torch.int64), error=errors[0])
    labels = torch.tensor([sample.label for sample in samples], dtype=torch.int64)
    flips = torch.tensor([sample.flip for sample in samples], dtype=torch.bool)
    shifts = torch.tensor([sample.shift for sample in samples], dtype=torch.float32)
    encoded = [place for place, sample in enumerate(samples) if sample.encoded is not None]
    if not encoded:
        return Batch(stack_channels_last([sample.image for sample in samples]), labels, flips, shifts)
    side = samples[encoded[0]].size
    images = torch.zeros(len(samples), side, side, 3, dtype=torch.uint8).permute(0, 3, 1, 2)
    for place, sample in enumerate(samples):
        if sample.image is not None:
            images[place] = sample.image
    chosen = [samples[place] for place in encoded]
    return Batch(
        images, labels, flips, shifts, encoded=[sample.encoded for sample in chosen], encoded_at=torch.tensor(encoded, dtype=torch.int64),
        boxes=torch.tensor([sample.box for sample in chosen], dtype=torch.float32), paths=[sample.path for sample in chosen],
    )


def stack_channels_last(images: list[torch.Tensor]) -> torch.Tensor:
    """(3, S, S) images -> a (B, 3, S, S) batch laid out channels last, the layout Normalize hands
    the model: made here, in the worker, so the training process does not transpose every batch
    (a 224-px batch of 64 took it 14 ms of its 50 ms normalising on one CPU thread). Images
    decoded channels last (``search.views``) are copied, not transposed."""
    return torch.stack([image.permute(1, 2, 0) for image in images]).permute(0, 3, 1, 2)


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


def loader(dataset: torch.utils.data.Dataset, batches: Iterable[Sequence[object]], workers: int, device: torch.device, persistent: bool = False, start_method: str | None = WORKER_START) -> DataLoader:
    """A loader over batches of sample keys; ``persistent`` keeps its workers between epochs;
    ``start_method`` is how they start (benchmarks/worker_start.py compares the choices)."""
    return DataLoader(
        dataset, batch_sampler=batches, num_workers=workers, collate_fn=collate, pin_memory=device.type == "cuda",
        prefetch_factor=PREFETCH_BATCHES if workers else None, worker_init_fn=_one_thread, persistent_workers=persistent and workers > 0,
        multiprocessing_context=start_method if workers else None,
    )


def _one_thread(_: int) -> None:
    torch.set_num_threads(1)  # a worker decodes one image at a time; the trial's CPUs are shared out


def on_device(batches: Iterator[Batch], device: torch.device) -> Iterator[Batch]:
    """Batches on ``device``: the next one's copy (and decode, for encoded JPEGs) is issued before
    this one is handed out, so on CUDA it overlaps the step (pinned memory, non-blocking). A file
    that failed is raised here."""
    pending: Batch | None = None
    for batch in batches:
        if batch.error is not None:
            raise DataError(batch.error)
        ready, pending = pending, batch.to(device).decoded()
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


def batches_at_rest(files: Sequence[str], labels: torch.Tensor, rest_size: int, batch_size: int, workers: int, device: torch.device) -> Iterator[Batch]:
    """The files at rest, in order, in batches of ``batch_size`` on ``device``, decoded by
    ``workers`` loader workers (0: in this process); a file that cannot be decoded is named in one
    line (DataError). Evaluation, channel statistics and a folder's first decode all read so."""
    batches = [list(range(start, min(start + batch_size, len(files)))) for start in range(0, len(files), batch_size)]
    return on_device(iter(loader(RestingFiles(files, labels, rest_size), batches, workers, device)), device)


def decode_at_rest(files: Sequence[str], rest_size: int, workers: int) -> torch.Tensor:
    """Every file at rest, in order, as one uint8 tensor on the host (a folder's first decode),
    filled batch by batch: the decoded set is held once, not twice."""
    images, filled = torch.empty(len(files), 3, rest_size, rest_size, dtype=torch.uint8), 0
    for batch in batches_at_rest(files, torch.zeros(len(files), dtype=torch.int64), rest_size, DECODE_BATCH, workers, torch.device("cpu")):
        images[filled : filled + len(batch.images)] = batch.images
        filled += len(batch.images)
    return images


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
    at_rest = batches_at_rest(files, torch.zeros(len(files), dtype=torch.int64), rest_size, 64, workers, torch.device("cpu"))
    mean, std = channel_stats(batch.images for batch in at_rest)
    cache.parent.mkdir(parents=True, exist_ok=True)
    zoo.write_atomically(cache, json.dumps({"mean": mean, "std": std}))
    return mean, std
