"""Seconds from a loader's start to its first batch, by each way of starting its workers, side by
side in one run. search.stream starts them by fork on Linux (``WORKER_START``), where Python 3.14
defaults to forkserver. On the streaming path evaluation starts its loader every epoch, so a
streamed run pays the difference each epoch (a trial's training loader keeps its workers: once).

    python benchmarks/worker_start.py --data ../shared/datasets/cifar10-jpeg [--workers 2] [--repeats 5]

The loader is evaluation's on the streaming path: the files at rest (``RestingFiles``) over the
folder's whole list, as a trial holds it, and one batch of 256 per worker. The start methods run
in turn, ``--repeats`` times; medians are reported. Run it on an otherwise idle machine.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import statistics
import time
from pathlib import Path

import torch

from search.data import DataError, _list_folder
from search.provenance import hardware_name
from search.stream import RestingFiles, loader
from zoo.commandline import OneLineParser

BATCH = 256


def first_batch_seconds(dataset: RestingFiles, workers: int, start_method: str) -> float:
    start = time.perf_counter()
    batches = loader(dataset, [list(range(index * BATCH, (index + 1) * BATCH)) for index in range(workers)], workers, torch.device("cpu"), start_method=start_method)
    next(iter(batches))
    return time.perf_counter() - start


def main() -> None:
    parser = OneLineParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="an ImageFolder root with train/ (its whole file list is the loader's)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    methods = [method for method in ("fork", "forkserver", "spawn") if method in multiprocessing.get_all_start_methods()]
    try:
        split, _ = _list_folder(Path(args.data) / "train", 32)
    except DataError as error:
        parser.error(str(error))
    dataset = RestingFiles(split.files, split.labels, 32)
    print(f"CPU: {hardware_name(torch.device('cpu'))}, {os.cpu_count()} cores; {len(split.files):,} files ({len(pickle.dumps(dataset)) / 2**20:.1f} MiB pickled), "
          f"{args.workers} workers, batch {BATCH}; medians of {args.repeats} runs in turn")
    seconds: dict[str, list[float]] = {method: [] for method in methods}
    for _ in range(args.repeats):
        for method in methods:
            seconds[method].append(first_batch_seconds(dataset, args.workers, method))
    fork = statistics.median(seconds["fork"])
    print("| start method | seconds to the first batch | against fork |\n|---|---|---|")
    for method in methods:
        median = statistics.median(seconds[method])
        print(f"| {method} | {median:.2f} | {median / fork:.1f}x |")


if __name__ == "__main__":
    main()
