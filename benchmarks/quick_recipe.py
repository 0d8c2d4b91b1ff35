"""The quick recipe's promise: ResNet-20 on the CIFAR-10 training split, at least 85% validation
accuracy in at most 10 minutes on this 2-core CPU. Prints what one run reached and how long it took.

    python benchmarks/quick_recipe.py --data ../shared/datasets/cifar10-jpeg [--seed 0]

Run it on an otherwise idle machine; it trains for about 9.5 minutes.
"""

from __future__ import annotations

import argparse
import tempfile
import time

from search.config import TrialConfig
from search.train import available_cpus, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True)
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    config = TrialConfig(model=args.model, data=args.data, budget="quick", seed=args.seed, threads=available_cpus())
    with tempfile.TemporaryDirectory() as scratch:
        start = time.perf_counter()
        summary = train(config, scratch)
        wall = time.perf_counter() - start
    print(
        f"{args.model} quick ({summary['epochs']} epochs, {summary['precision']}, {summary['threads']} threads, {summary['hardware']}): "
        f"val {summary['val_accuracy']:.4f}, held-out test {summary['test_accuracy']:.4f}, "
        f"{wall:.0f} s wall including data loading ({summary['images_per_second']:.0f} training images/s)"
    )


if __name__ == "__main__":
    main()
