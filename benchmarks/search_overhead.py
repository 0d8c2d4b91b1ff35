"""What the search engine costs on top of the training loop, measured side by side in one run.

    python benchmarks/search_overhead.py [--data synthetic] [--images 20000]

Reports: training images/s of one trial through ``search.run`` against the same training through
``search.train`` alone (target ratio >= 0.95); Ray start-up seconds; per-trial overhead (driver
wall time minus the trial's own training wall time); and trials per hour for four short trials on
one local node vs a two-node loopback cluster with the same CPUs. Run on an idle machine.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from search.cluster import connect
from search.config import TrialConfig
from search.data import DataError, describe_source
from search.run import run_search
from search.train import train
from zoo.commandline import OneLineParser


def main() -> None:
    parser = OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="synthetic")
    parser.add_argument("--images", type=int, default=3000, help="training images per trial (one epoch)")
    args = parser.parse_args()
    try:
        describe_source(args.data)
    except DataError as error:
        parser.error(str(error))
    recipe = {"epochs": 1, "train_subset": args.images, "val_size": 256, "test_size": 256}
    scratch = Path(tempfile.mkdtemp(prefix="rbbench", dir="/tmp"))
    os.environ.update({"RAY_TMPDIR": str(scratch), "RAY_USAGE_STATS_ENABLED": "0", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"})

    alone = train(TrialConfig(model="resnet20", data=args.data, budget="quick", recipe_overrides=recipe, threads=1), scratch / "alone", log=None)

    start = time.perf_counter()
    connect(None, [])  # sets the loopback variable before Ray is first imported
    import ray

    ray_start = time.perf_counter() - start

    start = time.perf_counter()
    one = run_search("shortcuts", data=args.data, budget="quick", recipe=recipe, trials=1, baselines=False, out=str(scratch / "one"))
    one_wall = time.perf_counter() - start
    trial = one.iloc[0]

    start = time.perf_counter()
    run_search("shortcuts", data=args.data, budget="quick", recipe=recipe, trials=4, baselines=False, out=str(scratch / "local4"))
    local_rate = 4 / (time.perf_counter() - start) * 3600
    ray.shutdown()

    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, connect=False, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    try:
        start = time.perf_counter()
        run_search("shortcuts", data=args.data, budget="quick", recipe=recipe, trials=4, baselines=False, address=cluster.address, out=str(scratch / "cluster4"))
        cluster_rate = 4 / (time.perf_counter() - start) * 3600
    finally:
        ray.shutdown()
        cluster.shutdown()

    print(f"resnet20, one epoch of {args.images} images, 1 thread per trial, data {args.data}")
    print(f"training images/s: search.train alone {alone['images_per_second']:.0f}, through search.run {trial['images_per_second']:.0f} (ratio {trial['images_per_second'] / alone['images_per_second']:.2f})")
    print(f"Ray start-up: {ray_start:.1f} s; one-trial search wall {one_wall:.1f} s vs the trial's own {trial['wall_seconds']:.1f} s (overhead {one_wall - trial['wall_seconds']:.1f} s)")
    print(f"trials/hour (4 trials, 2 CPUs): one node {local_rate:.0f}, two-node loopback cluster {cluster_rate:.0f}")


if __name__ == "__main__":
    main()
