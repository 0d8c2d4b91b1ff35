"""Each loader worker's private memory after shuffled epochs over a streamed split's file list,
held as a tuple of str and as ``search.data.PathList``, side by side in one run (Linux: it reads
/proc/PID/smaps_rollup).

    python benchmarks/path_list_memory.py [--files 1281167] [--workers 4] [--epochs 2]

Loader workers are forked from the trainer (``search.stream.WORKER_START``) and share its memory
until they write to it. Reading a Python object writes its reference count, so each worker that
reads paths from a tuple copies the pages they lie on; over shuffled epochs it comes to hold the
whole list. The paths are ImageNet-like names (the 1,007th: ``/data/imagenet/train/n00000006/n00000006_0001006.JPEG``);
no file is opened: a worker reads each path, as ``TrainingFiles`` does before it opens the file.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence

import torch
from torch.utils.data import DataLoader, Dataset

from search.data import PathList
from search.provenance import hardware_name
from search.stream import WORKER_START
from zoo.commandline import OneLineParser

BATCH = 256


def private_mib(pid: int) -> float:
    """Memory only this process holds (written since it was forked): Private_Dirty, in MiB."""
    with open(f"/proc/{pid}/smaps_rollup") as rollup:
        fields = dict(line.split(":", 1) for line in rollup.read().splitlines()[1:])
    return int(fields["Private_Dirty"].split()[0]) / 1024


class PathReader(Dataset):
    """Reads the path at a position; the key None answers with the worker's private memory."""

    def __init__(self, files: Sequence[str]) -> None:
        self.files = files

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, position: int | None) -> float:
        return private_mib(os.getpid()) if position is None else float(len(self.files[position]))


def workers_private_mib(files: Sequence[str], workers: int, epochs: int) -> tuple[list[float], float]:
    """Each worker's private MiB after ``epochs`` shuffled epochs, and the seconds they took."""
    generator = torch.Generator().manual_seed(0)
    batches = [batch for _ in range(epochs) for batch in torch.randperm(len(files), generator=generator).split(BATCH)]
    # The loader hands batches to its workers in turn: the last ``workers`` batches reach one each.
    keys = [batch.tolist() for batch in batches] + [[None]] * workers
    loader = DataLoader(PathReader(files), batch_sampler=keys, num_workers=workers, multiprocessing_context=WORKER_START, collate_fn=list)
    start = time.perf_counter()
    answers = list(loader)
    return [answer[0] for answer in answers[-workers:]], time.perf_counter() - start


def main() -> None:
    parser = OneLineParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=1_281_167, help="default: ImageNet's training split")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    if not sys.platform.startswith("linux"):
        parser.error(f"reads /proc/PID/smaps_rollup: Linux only, not {sys.platform}")
    for option in ("files", "workers", "epochs"):
        if getattr(args, option) < 1:
            parser.error(f"--{option} must be positive, got {getattr(args, option)}")
    names = [f"/data/imagenet/train/n{index % 1000:08d}/n{index % 1000:08d}_{index:07d}.JPEG" for index in range(args.files)]
    print(f"CPU: {hardware_name(torch.device('cpu'))}, {os.cpu_count()} cores; {args.files:,} paths, {args.workers} workers started by {WORKER_START}, {args.epochs} shuffled epoch(s), batch {BATCH}")
    measured = {}
    for label, files in (("tuple of str", tuple(names)), ("PathList", PathList(names))):
        measured[label] = workers_private_mib(files, args.workers, args.epochs)
    print("| file list | each worker's private MiB | seconds |\n|---|---|---|")
    for label, (mib, seconds) in measured.items():
        print(f"| {label} | {', '.join(f'{value:.0f}' for value in mib)} | {seconds:.1f} |")
    tuple_mib, packed_mib = (sum(measured[label][0]) for label in ("tuple of str", "PathList"))
    print(f"workers' private memory, tuple against PathList: {tuple_mib / packed_mib:.1f}x ({tuple_mib - packed_mib:.0f} MiB more in all)")


if __name__ == "__main__":
    main()
