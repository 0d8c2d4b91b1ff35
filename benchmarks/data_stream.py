"""The streaming data path against a torchvision DataLoader with PIL transforms, side by side in
one run, and the peak memory of a trial on a folder that does not fit its in-memory bound.

    python benchmarks/data_stream.py [--images 600] [--workers 2] [--seconds 10] [--sizes 64,128,224] [--repeats 3]

1. Loader only: training batches of random-resized crops with flips, normalised and ready on the
   device (here the CPU), from ~500x375 JPEGs the script writes. ResBench's path (Pillow decodes
   at a reduced DCT scale where the crop allows, torchvision's decoder the whole picture where it
   does not; torch's antialiased uint8 resize of the box; uint8 batches stacked channels last;
   flips and normalisation batched) against torchvision's ``ImageFolder`` + ``RandomResizedCrop``,
   ``RandomHorizontalFlip``, ``ToTensor``, ``Normalize``: the same workers and batch size.
2. Memory: ``search.train`` on a folder whose images at rest decode to several times the bound the
   script sets (``RESBENCH_IN_MEMORY_BYTES``); the peak proportional set size of its whole
   process tree (trainer and loader workers), against the same trial on a folder a quarter the size.
3. On a machine with CUDA: JPEG decode images/s of batched nvJPEG (``torchvision.io.decode_jpeg``
   on the GPU) against the CPU loader workers decoding the same files (full size, no crop).
   (benchmarks/gpu_check.py also times the streaming path's training batches on the GPU with
   each ``--decode`` place, through ``resbench_rate``.)

Run it on an otherwise idle machine; it prints the ratios the README reports.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from search.augment import Normalize, flip_where
from search.data import FileSplit
from search.measure import synchronize, tree_memory_bytes
from search.provenance import hardware_name
from search.stream import EpochBatches, TrainingFiles, loader, on_device
from zoo.commandline import OneLineParser, comma_list

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def write_photos(root: Path, count: int, classes: int = 10, size: tuple[int, int] = (500, 375)) -> None:
    """Smooth, photo-like JPEGs (gradients and blobs, quality 90): decodes as costly as photos."""
    rng = np.random.default_rng(0)
    rows, cols = np.mgrid[0 : size[1], 0 : size[0]].astype(np.float32)
    for index in range(count):
        folder = root / "train" / f"class{index % classes}"
        folder.mkdir(parents=True, exist_ok=True)
        waves = [np.sin(rows / rng.uniform(8, 60) + rng.uniform(0, 6)) * np.cos(cols / rng.uniform(8, 60)) for _ in range(3)]
        pixels = np.stack([(w + 1) * 100 + rng.normal(0, 12, w.shape) for w in waves], axis=2).clip(0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"{index:05d}.jpg", quality=90)


def resbench_rate(files: FileSplit, size: int, batch: int, workers: int, seconds: float, device: torch.device = torch.device("cpu"), decode: str = "workers") -> float:
    """Training batches/s of the streaming path, normalised on ``device``, JPEGs decoded where
    ``decode`` says (search.stream.DECODE_PLACES)."""
    normalize = Normalize(MEAN, STD, device, channels_last=True)
    dataset = TrainingFiles(files, "random_resized_crop", size, size, flip=True, lighting=False, seed=0, decode=decode)
    order, epoch, steps = EpochBatches(), 0, 0
    data = loader(dataset, order, workers, device, persistent=True)
    seen, start = 0, None
    while True:
        epoch += 1
        order.set(epoch, torch.randperm(len(files)), batch, 0, len(files) // batch)
        for ready in on_device(iter(data), device):
            normalize(flip_where(ready.images, ready.flips))
            steps += 1
            if steps == 3:  # workers started, first batches out
                synchronize(device)
                start = time.perf_counter()
            elif start is not None:
                seen += batch
                if time.perf_counter() - start >= seconds:
                    synchronize(device)
                    return seen / (time.perf_counter() - start)


def torchvision_rate(root: Path, size: int, batch: int, workers: int, seconds: float) -> float:
    from torchvision import datasets
    from torchvision import transforms as T

    transform = T.Compose([T.RandomResizedCrop(size), T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(MEAN, STD)])
    data = torch.utils.data.DataLoader(datasets.ImageFolder(str(root / "train"), transform), batch_size=batch, shuffle=True, num_workers=workers, drop_last=True, persistent_workers=True, prefetch_factor=2)
    seen, start = 0, None
    while True:
        for step, (images, _) in enumerate(data):
            images.contiguous(memory_format=torch.channels_last)
            if start is None and step == 2:
                start = time.perf_counter()
            elif start is not None:
                seen += batch
                if time.perf_counter() - start >= seconds:
                    return seen / (time.perf_counter() - start)


def peak_trial_memory(data: Path, out: Path, bound: int, rest: int) -> tuple[int, dict]:
    command = [sys.executable, "-m", "search.train", "--model", "resnet18", "--data", str(data), "--budget", "smoke", "--epochs", "1", "--train-subset", "256",
               "--batch-size", "64", "--val-size", "15", "--test-size", "15", "--image-size", "112", "--eval-resize", str(rest), "--eval-crop", "224",
               "--eval-batch-size", "64", "--threads", "2", "--out", str(out)]
    process = subprocess.Popen(command, env={**os.environ, "RESBENCH_IN_MEMORY_BYTES": str(bound)}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak = 0
    while process.poll() is None:
        peak = max(peak, tree_memory_bytes(process.pid))
        time.sleep(0.05)
    if process.returncode != 0:
        raise SystemExit(f"search.train failed: {process.stderr.read()[-2000:] if process.stderr else ''}")
    return peak, json.loads((out / "summary.json").read_text())


def decode_rates(files: list[str], workers: int, batch: int, on_gpu: bool) -> tuple[float | None, float]:
    """(GPU nvJPEG or None, CPU workers) full-size JPEG decodes per second of the same files."""
    from torchvision.io import decode_jpeg, read_file

    encoded = [read_file(path) for path in files]
    gpu = None
    if on_gpu:
        decode_jpeg(encoded[:batch], device="cuda")  # warm-up: nvJPEG's handles and buffers
        torch.cuda.synchronize()
        start = time.perf_counter()
        for first in range(0, len(encoded), batch):
            decode_jpeg(encoded[first : first + batch], device="cuda")
        torch.cuda.synchronize()
        gpu = len(encoded) / (time.perf_counter() - start)

    class Decode(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return len(encoded)

        def __getitem__(self, index: int) -> torch.Tensor:
            return decode_jpeg(encoded[index])

    data = torch.utils.data.DataLoader(Decode(), batch_size=batch, num_workers=workers, collate_fn=len)
    start = time.perf_counter()
    decoded = sum(data)
    return gpu, decoded / (time.perf_counter() - start)


def pixel_sizes(text: str) -> list[int]:
    """``--sizes``: positive whole numbers, comma-separated (a bad one is argparse's one-line error)."""
    sizes = [int(item) for item in comma_list(text)]
    if not sizes or min(sizes) < 1:
        raise ValueError(text)
    return sizes


def main() -> None:
    parser = OneLineParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=600)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--sizes", type=pixel_sizes, default="64,128,224", help="crop sides in pixels, comma-separated")
    parser.add_argument("--repeats", type=int, default=3, help="alternating runs of the two loaders per size; medians reported")
    args = parser.parse_args()
    print(f"CPU: {hardware_name(torch.device('cpu'))}, {os.cpu_count()} cores; {args.images} JPEGs of 500x375, {args.workers} loader workers, batch {args.batch}")
    with tempfile.TemporaryDirectory() as temporary:
        root = Path(temporary) / "photos"
        write_photos(root, args.images)
        from search.data import _list_folder

        files, _ = _list_folder(root / "train", 256)
        print("\n1. loader only: training images/s, batches normalised on the device")
        print(f"(medians of {args.repeats} alternating runs of each)")
        print("| crop | ResBench stream | torchvision DataLoader + PIL | ratio |\n|---|---|---|---|")
        for size in args.sizes:
            rates = [(resbench_rate(files, size, args.batch, args.workers, args.seconds), torchvision_rate(root, size, args.batch, args.workers, args.seconds)) for _ in range(args.repeats)]
            ours, theirs = (float(np.median(column)) for column in zip(*rates, strict=True))
            print(f"| {size} | {ours:,.0f} | {theirs:,.0f} | {ours / theirs:.2f}x |", flush=True)

        print("\n2. memory: peak PSS of a trial's process tree (trainer + loader workers), images at rest 256 px")
        bound = 24 * 2**20
        small = Path(temporary) / "small"
        write_photos(small, args.images // 4)
        rows = []
        for name, data in (("small", small), ("large", root)):
            peak, summary = peak_trial_memory(data, Path(temporary) / f"run-{name}", bound, 256)
            count = sum(summary["splits"][key] for key in ("train", "val", "test"))
            rows.append((name, count, count * 3 * 256 * 256, peak, summary["data_path"]))
        print("| folder | images | decoded at rest | trial peak PSS | path |\n|---|---|---|---|---|")
        for name, count, decoded, peak, path in rows:
            print(f"| {name} | {count} | {decoded / 2**20:,.0f} MiB ({decoded / bound:.1f}x the {bound / 2**20:.0f} MiB bound) | {peak / 2**20:,.0f} MiB | {path} |")
        print(f"growth from a folder 4x larger: {(rows[1][3] - rows[0][3]) / 2**20:+,.0f} MiB")

        if torch.cuda.is_available():
            gpu, cpu = decode_rates(list(files.files), args.workers, args.batch, on_gpu=True)
            print(f"\n3. JPEG decode on {torch.cuda.get_device_name()}: nvJPEG {gpu:,.0f} images/s vs {args.workers} CPU workers {cpu:,.0f} images/s ({gpu / cpu:.1f}x)")


if __name__ == "__main__":
    main()
