"""Small real data sets written by tests (an ImageFolder of PNGs, a CIFAR-layout copy), the
listening sockets of a process tree, and a data set that tells which process made its samples."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import torch
from PIL import Image

from search.stream import Sample


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


def write_photo_folder(root: Path, split: str, per_class: int, classes: int = 3, seed: int = 0, suffix: str = ".jpg", sizes: tuple[int, int] = (64, 160)) -> None:
    """Photo-like files of many sizes and shapes (each side in ``sizes``): class k is a disc of
    colour k at a random place and size on a noisy background, so the labels survive any crop."""
    generator = torch.Generator().manual_seed(seed)
    palette = torch.tensor([[230, 40, 40], [40, 220, 40], [40, 60, 230], [220, 220, 40], [200, 40, 220]], dtype=torch.float32)
    for label in range(classes):
        folder = root / split / f"class{label}"
        folder.mkdir(parents=True, exist_ok=True)
        for index in range(per_class):
            width, height = (int(v) for v in torch.randint(sizes[0], sizes[1] + 1, (2,), generator=generator))
            image = torch.rand(3, height, width, generator=generator) * 90 + 60
            rows, cols = torch.arange(height)[:, None], torch.arange(width)[None, :]
            radius = min(width, height) * (0.3 + 0.2 * float(torch.rand((), generator=generator)))
            centre = (height / 2 + (float(torch.rand((), generator=generator)) - 0.5) * (height - 2 * radius), width / 2 + (float(torch.rand((), generator=generator)) - 0.5) * (width - 2 * radius))
            disc = ((rows - centre[0]) ** 2 + (cols - centre[1]) ** 2) <= radius**2
            image = torch.where(disc, palette[label % len(palette)][:, None, None], image)
            Image.fromarray(image.round().to(torch.uint8).permute(1, 2, 0).numpy()).save(folder / f"{index:04d}{suffix}", quality=90)


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


# Listening sockets of a process tree, from /proc (Ray's processes are the driver's descendants)


def listening_addresses(pids: set[int]) -> set[str]:
    """The local addresses of the TCP sockets these processes listen on (from /proc/net)."""
    inodes: set[str] = set()
    for pid in pids:
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            pass
    addresses = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                addresses.add(decode_address(fields[1].split(":")[0]))
    return addresses


def decode_address(hex_address: str) -> str:
    raw = bytes.fromhex(hex_address)
    words = [raw[i : i + 4][::-1] for i in range(0, len(raw), 4)]  # each 32-bit word is little-endian
    packed = b"".join(words)
    if len(packed) == 4:
        return ".".join(map(str, packed))
    if packed[:12] == b"\0" * 10 + b"\xff\xff":  # IPv4-mapped IPv6
        return ".".join(map(str, packed[12:]))
    return "::" if packed == b"\0" * 16 else packed.hex()


class ParentOfWorker(torch.utils.data.Dataset):
    """Each sample's label is the pid of the process that started the loader worker making it."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> Sample:
        return Sample(torch.zeros(3, 2, 2, dtype=torch.uint8), os.getppid())
