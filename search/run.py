"""``python -m search.run --space shortcuts``: the main job.

Optuna samples configurations, Ray Tune runs them (on this machine by default, on a cluster with
``--address``), each trial is ``search.train``; the run ends with ``OUT/results.csv`` and the
space's leaderboard page beside it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import NoReturn

from search.data import DataError


class OneLineParser(argparse.ArgumentParser):
    """Bad arguments: one line on stderr and exit status 2, like every other bad input."""

    def error(self, message: str) -> NoReturn:
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(2)


def parse_recipe(items: list[str]) -> dict[str, str]:
    recipe = {}
    for item in items:
        key, equals, value = item.partition("=")
        if not equals or not key:
            raise ValueError(f"--recipe expects KEY=VALUE, got {item!r}")
        recipe[key.replace("-", "_")] = value
    return recipe


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="python -m search.run", description="Search ResNet variants: Optuna samples, Ray Tune runs.")
    parser.add_argument("--space", help="a registered space (see --list-spaces)")
    parser.add_argument("--list-spaces", action="store_true", help="list the spaces and exit")
    parser.add_argument("--data", default="cifar10", help="cifar10 (downloaded on first use), cifar100, synthetic, or a folder")
    parser.add_argument("--budget", default="quick", help="smoke, quick or paper")
    parser.add_argument("--recipe", nargs="*", default=[], metavar="KEY=VALUE", help="recipe overrides for every trial, e.g. epochs=5")
    parser.add_argument("--sampler", choices=("grid", "tpe", "random"), default=None, help="default: grid for the paper's spaces, else tpe")
    parser.add_argument("--trials", type=int, default=None, help="tpe/random: configurations to sample; grid: caps the grid (first trials in grid order)")
    parser.add_argument("--seeds", type=int, default=1, help="seeds per grid configuration (3 or more for claims)")
    parser.add_argument("--objective", choices=("accuracy", "pareto"), default="accuracy")
    parser.add_argument("--max-gmacs", type=float, default=None, help="skip configurations above this many GMACs")
    parser.add_argument("--time-budget", type=float, default=None, metavar="SECONDS", help="stop launching trials after this long")
    parser.add_argument("--address", default=None, help="an existing Ray cluster (else RAY_ADDRESS, else a local instance on loopback)")
    parser.add_argument("--cpus-per-trial", type=float, default=None, help="default 1")
    parser.add_argument("--gpus-per-trial", type=float, default=None, help="default 1 where the cluster has GPUs, else 0; fractions pack trials")
    parser.add_argument("--plugins", default="", metavar="MODULE[,MODULE]", help="modules that register blocks or spaces")
    parser.add_argument("--no-baselines", action="store_true", help="do not train the VGG baseline beside the space")
    parser.add_argument("--out", default=None, help="experiment directory (default: experiments/SPACE)")
    parser.add_argument("--resume", action="store_true", help="continue the experiment in --out (re-running with the same --out does too)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        plugins = [m for m in args.plugins.split(",") if m]
        if args.list_spaces:
            from search.engine import import_plugins
            from search.spaces import describe, list_spaces

            import_plugins(plugins)
            for name in list_spaces():
                print(f"{name:<12} {describe(name)}")
            return 0
        if not args.space:
            raise ValueError("--space is required (see --list-spaces)")
        from search.engine import run_search  # Ray and Optuna load only for a real search
        from leaderboards import write_page

        out = Path(args.out or f"experiments/{args.space}")
        results = run_search(
            args.space,
            data=args.data,
            budget=args.budget,
            recipe=parse_recipe(args.recipe),
            sampler=args.sampler,
            trials=args.trials,
            seeds=args.seeds,
            objective=args.objective,
            max_gmacs=args.max_gmacs,
            time_budget=args.time_budget,
            address=args.address,
            cpus_per_trial=args.cpus_per_trial,
            gpus_per_trial=args.gpus_per_trial,
            plugins=plugins,
            baselines=not args.no_baselines,
            out=str(out),
            resume=args.resume,
        )
    except (ValueError, DataError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    page = write_page(out)
    print(page.top)
    print(f"\nresults: {out / 'results.csv'}\nleaderboard: {page.path}")
    failed = (results["status"] == "failed").sum() if len(results) else 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
