"""A folder's first decode (the in-memory path, before its cache exists): in this process against
the loader workers ``search.data.decode_workers`` gives it, side by side, alternating.

    python benchmarks/first_decode.py --data ../shared/datasets/cifar10-jpeg [--repeats 2]

Every later start reads the decoded cache instead (about a second for CIFAR-10), so this is what
a fresh machine pays once: on a GPU machine lent for minutes, once per lease. Nothing is cached
here (the decode runs without the cache), and both ways must give the same tensor.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from search.data import DataError, _decode_folder, _list_folder, decode_workers  # noqa: E402
from search.provenance import hardware_name  # noqa: E402
from zoo.commandline import OneLineParser  # noqa: E402


def main() -> int:
    parser = OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="an ImageFolder root (its train/ is decoded)")
    parser.add_argument("--rest-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    root = Path(args.data) / "train"
    try:
        files = len(_list_folder(root, args.rest_size)[0].files)
    except DataError as error:
        parser.error(str(error))
    workers = decode_workers(files)
    print(f"{hardware_name(torch.device('cpu'))}: {files} files at rest at {args.rest_size} px, {torch.get_num_threads()} threads -> {workers} loader workers")
    seconds: dict[int, list[float]] = {0: [], workers: []}
    reference = None
    for _ in range(args.repeats):
        for count in (0, workers):
            started = time.perf_counter()
            split, _ = _decode_folder(root, args.rest_size, count)
            seconds[count].append(time.perf_counter() - started)
            reference = split.images if reference is None else reference
            assert torch.equal(split.images, reference), "the workers decoded other pixels"
    in_process, in_workers = statistics.median(seconds[0]), statistics.median(seconds[workers])
    print(f"in this process: {in_process:.1f} s (median of {args.repeats}); {workers} loader workers: {in_workers:.1f} s; {in_process / in_workers:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
