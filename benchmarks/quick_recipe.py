"""The quick recipe's promise, in each precision side by side: ResNet-20 on the CIFAR-10 training
split, at least 85% validation accuracy, and the wall time of bf16 autocast against fp32 on this CPU.

    python benchmarks/quick_recipe.py --data ../shared/datasets/cifar10-jpeg [--precisions fp32 bf16] [--onednn-isa AVX512_CORE_BF16]

Each precision trains the whole recipe in its own process, one after the other, from the decoded
cache (filled before the first is timed), so neither inherits the other's warm state. Wall time
includes loading the decoded set, not decoding it. Run it on an otherwise idle machine: each run
takes 10-35 minutes on 2 cores.

``--onednn-isa`` caps the kernels oneDNN may use (``ONEDNN_MAX_CPU_ISA``) in every run: on a Xeon
with AMX, ``AVX512_CORE_BF16`` makes bf16 run on the AVX512-BF16 kernels a CPU without AMX uses
(fp32 never uses AMX, so the cap leaves it as it is). The same instructions are not the same cores:
held so, a Xeon ran bf16 0.78x as fast as fp32, where an AMD EPYC Zen 4 ran it 1.50x as fast
(README, Measured), so run this on the CPU in question. The line oneDNN itself prints says which
instruction set the runs got.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

TARGET_ACCURACY = 0.85
PRECISIONS = ("fp32", "bf16")  # the recipe field's explicit values ("auto" would hide which one ran)


def train_once(data: str, model: str, seed: int, precision: str) -> dict:
    """Train the quick recipe in this process; what the README reports about the run."""
    from search.config import TrialConfig
    from search.train import available_cpus, train

    config = TrialConfig(model=model, data=data, budget="quick", seed=seed, threads=available_cpus(), recipe_overrides={"precision": precision})
    with tempfile.TemporaryDirectory() as scratch:
        start = time.perf_counter()
        summary = train(config, scratch)
        wall = time.perf_counter() - start
    keys = ("epochs", "precision", "threads", "hardware", "val_accuracy", "test_accuracy", "images_per_second")
    return {"wall_seconds": wall, **{key: summary[key] for key in keys}}


def onednn_isa(env: dict[str, str]) -> str:
    """The instruction set oneDNN says it runs bf16 convolutions with under ``env``."""
    probe = "import torch; torch.nn.functional.conv2d(torch.ones(1, 8, 8, 8, dtype=torch.bfloat16), torch.ones(8, 8, 3, 3, dtype=torch.bfloat16))"
    printed = subprocess.run([sys.executable, "-c", probe], env={**env, "ONEDNN_VERBOSE": "1"}, capture_output=True, text=True, check=True).stdout
    return next((line.split("isa:", 1)[1] for line in printed.splitlines() if "isa:" in line), "not reported (no oneDNN)")


def main() -> None:
    from zoo.commandline import OneLineParser  # here, not at the top: the parent process stays free of torch

    parser = OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True)
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--precisions", nargs="+", choices=PRECISIONS, default=list(PRECISIONS))
    parser.add_argument("--onednn-isa", help="ONEDNN_MAX_CPU_ISA for every run, e.g. AVX512_CORE_BF16 (default: all the CPU has)")
    parser.add_argument("--one", choices=PRECISIONS, help=argparse.SUPPRESS)  # a run's own process
    args = parser.parse_args()
    if args.one:
        print(json.dumps(train_once(args.data, args.model, args.seed, args.one)))
        return

    from search.data import DataError, load_dataset

    try:
        load_dataset(args.data, data_seed=0)  # fills the decoded cache, so no run pays for the decode
    except DataError as error:
        parser.error(str(error))
    env = dict(os.environ)
    if args.onednn_isa:
        env["ONEDNN_MAX_CPU_ISA"] = args.onednn_isa
    print(f"oneDNN instruction set: {onednn_isa(env)} (ONEDNN_MAX_CPU_ISA={env.get('ONEDNN_MAX_CPU_ISA', 'unset')})", flush=True)
    runs = {}
    for precision in args.precisions:
        command = [sys.executable, __file__, "--data", args.data, "--model", args.model, "--seed", str(args.seed), "--one", precision]
        run = json.loads(subprocess.run(command, env=env, stdout=subprocess.PIPE, text=True, check=True).stdout.splitlines()[-1])
        runs[precision] = run
        print(
            f"{args.model} quick ({run['epochs']} epochs, {run['precision']}, {run['threads']} threads, {run['hardware']}): "
            f"val {run['val_accuracy']:.4f}, held-out test {run['test_accuracy']:.4f}, "
            f"{run['wall_seconds']:.0f} s wall including data loading ({run['images_per_second']:.0f} training images/s)"
            f"{'' if run['val_accuracy'] >= TARGET_ACCURACY else f', below the {TARGET_ACCURACY:.0%} target'}",
            flush=True,
        )
    if {"fp32", "bf16"} <= runs.keys():
        speedup = runs["fp32"]["wall_seconds"] / runs["bf16"]["wall_seconds"]
        rate = runs["bf16"]["images_per_second"] / runs["fp32"]["images_per_second"]
        print(f"bf16 over fp32: {speedup:.2f}x in wall time, {rate:.2f}x in training images/s{'' if speedup >= 1 else ' (bf16 is slower here)'}")


if __name__ == "__main__":
    main()
