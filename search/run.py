"""``python -m search.run --space shortcuts``: the main job.

Optuna samples configurations, Ray Tune runs them (on this machine by default, on a cluster with
``--address``), each trial is ``search.train``; the run ends with ``OUT/results.csv`` and the
space's leaderboard page beside it.

A search, in order: settings are checked (``search.settings``), the trials are planned
(``search.plan``), the study is written (``search.study``), Ray is joined or started
(``search.cluster``), the trials are launched (``search.launch``), each runs ``search.trial`` ->
``search.train``, and every ending is recorded in ``results.csv`` (``search.results``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd
import torch

import zoo
from search import cluster, spaces, stopping
from search.compilation import COMPILE_MODES
from search.config import config_option, parse_assignments, typed_overrides
from search.data import DataError, Dataset, asked_carves, choose_data_path, load_dataset, walking_once
from search.lease import Lease
from search.plan import Plan, estimate_minutes, make_plan
from search.planned import PLAN_FILE, PlannedExperiment, collect, plan_experiment, run_planned
from search.provenance import hardware_name, record, resolve_search_precision
from search.recipes import BUDGET_NAMES, recipe_fields
from search.results import SearchInterrupted, read_results
from search.settings import SETTINGS_FILE, SearchSettings, continue_experiment, read_settings, search_recipe, validate
from search.stream import DECODE_PLACES
from search.testing import injected_faults
from search.train import EXIT_INTERRUPTED, available_cpus
from zoo._registry import unknown_name_error
from zoo.commandline import OneLineParser, comma_list, exit_status, option_text
from zoo.plugins import Plugin, import_plugins


def run_search(space: str, callbacks: list[Any] | None = None, **options: Any) -> pd.DataFrame:
    """Run (or resume) a search and return its results table, one row per trial.

    ``callbacks``: Ray Tune callbacks (``ray.tune.Callback``, logger callbacks such as
    ``ray.tune.logger.CSVLoggerCallback``) added beside the search's own.
    """
    settings = SearchSettings(space=space, **options)
    plugins = validate(settings)
    if search_recipe(settings).val_size == 0:
        raise ValueError("recipe val_size 0 keeps no validation split, and a Ray search samples and prunes on validation accuracy; valid: val_size 1 or more, or a planned grid (--plan, then --run-planned), which takes 0")
    out = Path(settings.out).resolve()
    if (out / PLAN_FILE).exists():  # as --plan refuses a Ray search's folder: one launcher per experiment
        raise ValueError(f"{out} holds a planned experiment (plan.json); run it with --run-planned {out}, or search with Ray into another --out")
    with stopping.handled():  # a stop while the data loads ends the driver before Ray starts
        resuming = continue_experiment(settings, out)
        plan = make_plan(settings)
        settings.sampler = plan.sampler
        recipe = search_recipe(settings)
        # Fail fast, and warm the caches the trials read (decoded images, or a streamed folder's statistics).
        with walking_once():
            path = choose_data_path(recipe.data_path, settings.data, recipe.eval_resize)
            dataset = load_dataset(settings.data, data_seed=settings.data_seed, val_size=recipe.val_size, test_size=recipe.test_size, exact_sizes=asked_carves(settings.recipe), rest_size=recipe.eval_resize, path=path, workers=available_cpus() if path == "stream" else 1)
        # Another driver on the same experiment would re-queue its running trials: refused before Ray
        # starts; the lease itself is taken once Ray is up.
        Lease(out, "search driver").refuse_if_held()
        injected_faults().before_ray(lambda: stopping.current.requested)
        stopping.own(out)
        if stopping.current.requested:
            raise SearchInterrupted(len(read_results(out)), 0)
        return _run(settings, plugins, out, resuming, plan, dataset, list(callbacks or []))


def _run(settings: SearchSettings, plugins: list[Plugin], out: Path, resuming: bool, plan: Plan, dataset: Dataset, callbacks: list[Any]) -> pd.DataFrame:
    started_ray = cluster.connect(settings.address, plugins)
    stopping.reclaim()
    try:
        from search import launch, study  # Ray is imported by now, with the loopback setting in place

        resources = cluster.trial_resources(settings)
        with Lease(out, "search driver"):
            cluster.check_shared_storage(out)
            recipe = search_recipe(settings)
            precision = trial_precision(out, resuming, recipe.precision, resources.gpus_per_trial > 0)
            print(f"search {settings.space}: {plan.total} trials ({plan.sampler}: {plan.why}; {settings.seeds} seed(s)), budget {settings.budget} ({recipe.epochs} epochs), data {dataset.name} {dataset.sizes()}", flush=True)
            print(f"  resources: {resources.describe()} on {hardware_name(torch.device('cpu'))}; precision {precision}, compile {settings.compile}{', deterministic kernels' if settings.deterministic else ''}", flush=True)
            for note in plan.notes:
                print(f"  {note}", flush=True)
            print(f"  estimate: {estimate_minutes(settings, plan, resources)}", flush=True)
            if not resuming:
                study.enqueue(study.open_study(out, settings.space, settings.objective, settings.budget), plan)
                provenance = record(torch.device("cpu"), precision)  # the trials' precision, kept by every resume
                settings_record = {**asdict(settings), **provenance, "started_at": provenance["recorded_at"], "command": settings.command()}
                zoo.write_atomically(out / SETTINGS_FILE, json.dumps(settings_record, indent=2, sort_keys=True) + "\n")
            return launch.fit(settings, plan, plugins, out, resources, resuming, precision, callbacks)
    finally:
        if started_ray:
            cluster.disconnect()


def trial_precision(out: Path, resuming: bool, requested: str, trials_on_gpu: bool) -> str:
    """Decided when the experiment starts and read back from search.json on every resume, so a
    search continued on another machine trains its remaining trials as it trained the first.
    (An experiment from before this was recorded keeps "auto": its trials decide, as they did.)"""
    if resuming:
        return read_settings(out).get("precision") or requested
    return resolve_search_precision(requested, trials_on_gpu)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="python -m search.run", description="Search ResNet variants: Optuna samples, Ray Tune runs.",
        epilog=f"--recipe fields: {', '.join(recipe_fields())}. Spaces: --list-spaces.", key_value_options={"--recipe": list(recipe_fields())},
    )
    parser.add_argument("--config", metavar="FILE", help="settings from a YAML or JSON file, e.g. a finished search's search.json (its provenance is ignored); flags given here win")
    parser.add_argument("--space", help="a registered space (see --list-spaces)")
    parser.add_argument("--list-spaces", action="store_true", help="list the spaces and exit")
    parser.add_argument("--data", default="cifar10", help="cifar10 (downloaded on first use), cifar100, synthetic, or a folder")
    parser.add_argument("--budget", choices=BUDGET_NAMES, default="quick", help="the recipe's scale, for the space's family (the tables in README: Training one variant)")
    parser.add_argument("--recipe", nargs="*", default=[], metavar="KEY=VALUE", help="recipe overrides for every trial, e.g. epochs=5")
    parser.add_argument("--sampler", choices=spaces.SAMPLERS, default=None, help="default: what the space declares (grid for the paper's comparisons, tpe for bottleneck); else grid up to 64 configurations, tpe beyond")
    parser.add_argument("--trials", type=int, default=None, help="tpe/random: configurations to sample; grid: caps the grid (first trials in grid order)")
    parser.add_argument("--seeds", type=int, default=1, help="seeds per grid configuration (3 or more for claims)")
    parser.add_argument("--data-seed", type=int, default=0, help="the seed of the validation and test carve")
    parser.add_argument("--objective", choices=("accuracy", "pareto"), default="accuracy")
    parser.add_argument("--max-gmacs", type=float, default=None, help="skip configurations above this many GMACs")
    parser.add_argument("--time-budget", type=float, default=None, metavar="SECONDS", help="stop launching trials after this long")
    parser.add_argument("--address", default=None, help="an existing Ray cluster (else RAY_ADDRESS, else a local instance on loopback)")
    parser.add_argument("--cpus-per-trial", type=float, default=None, help="default 1 per worker (a trial's CPUs are split among its workers)")
    parser.add_argument("--gpus-per-trial", type=float, default=None, help="default 1 where the cluster has GPUs (1 per worker), else 0; fractions below 1 pack trials; N > 1 trains each trial on N GPUs, one data-parallel worker each")
    parser.add_argument("--workers-per-trial", type=int, default=None, metavar="N", help="train each trial as N data-parallel workers (Ray Train, or torchrun in --plan's commands; DistributedDataParallel; batch_size is the global batch); default: one per GPU of --gpus-per-trial, else 1")
    parser.add_argument("--plugins", type=comma_list, default=[], metavar="MODULE[,MODULE]", help="modules that register blocks or spaces")
    baselines = parser.add_mutually_exclusive_group()
    baselines.add_argument("--baselines", type=comma_list, default=None, metavar="MODEL[,MODEL]", help="models trained beside the space on the same data and recipe: zoo names or timm:NAME (timm's networks, e.g. timm:resnet18d); default: the family's VGG-16")
    baselines.add_argument("--no-baselines", action="store_true", help="train no baseline beside the space")
    parser.add_argument("--compile", default="off", help=f"torch.compile mode for every trial: {', '.join(COMPILE_MODES)} (not part of a trial's identity: a resume may change it)")
    parser.add_argument("--deterministic", action="store_true", help="every trial uses only kernels that give the same bits every time (search.train --deterministic): a trial repeats bitwise on the same card and software; not part of a trial's identity")
    parser.add_argument("--decode", default=SearchSettings.decode, help=f"where streamed trials decode JPEG training crops: {', '.join(DECODE_PLACES)} (workers: Pillow in the loader workers; device: batched on the trial's device, nvJPEG on CUDA; not part of a trial's identity)")
    parser.add_argument("--log", type=comma_list, default=[], metavar="LOGGER[,LOGGER]", help="experiment loggers: tensorboard, csv (files per trial under OUT/ray/), mlflow (a file store in OUT/mlruns; the mlflow extra)")
    parser.add_argument("--retries", type=int, default=2, help="restarts of a trial that crashed (a lost node, a full disk; bad input is never retried)")
    parser.add_argument("--out", default=None, help="experiment directory (default: experiments/SPACE)")
    parser.add_argument("--resume", action="store_true", help="continue the experiment in --out (re-running with the same --out does too)")
    without_ray = parser.add_argument_group("without Ray (grid designs): plan the trials as search.train commands, run them with any launcher, collect")
    without_ray.add_argument("--plan", action="store_true", help="write the experiment in --out and print one search.train command per trial; nothing trains")
    without_ray.add_argument("--run-planned", metavar="EXPERIMENT", help="run a planned experiment's unfinished commands here, then collect")
    without_ray.add_argument("--jobs", type=int, default=1, help="--run-planned: commands at once (each gets cores/jobs threads)")
    without_ray.add_argument("--gpus", type=comma_list, default=None, metavar="ID[,ID]", help="--run-planned: GPUs to spread the commands over (CUDA_VISIBLE_DEVICES per command: one GPU, or as many as a trial has workers)")
    without_ray.add_argument("--collect", metavar="EXPERIMENT", help="build results.csv and the page from a planned experiment's trial directories")
    return parser


# What --run-planned and --collect take besides the experiment: its search.json fixes the rest.
PLANNED_OPTIONS = {"--run-planned": ("--jobs", "--gpus", "--time-budget"), "--collect": ()}
RUNNER_OPTIONS = ("--jobs", "--gpus")
RAY_OPTIONS = ("--address", "--retries", "--log")  # a Ray search's: planned commands run under any launcher


def check_options_apply(args: argparse.Namespace, given: list[str]) -> None:
    """An option the chosen mode would ignore is refused, not dropped without a word: ``--collect
    EXP --out ELSEWHERE`` or a Ray search given ``--jobs 4`` would otherwise run as if it were
    not there."""
    mode = "--run-planned" if args.run_planned else "--collect" if args.collect else None
    if mode is None:
        if stray := [option for option in given if option in RUNNER_OPTIONS]:
            raise ValueError(f"{stray[0]} applies only to --run-planned (--plan writes the commands, --run-planned EXPERIMENT --jobs N runs them); a Ray search packs its trials by --cpus-per-trial and --gpus-per-trial")
        if args.plan and "--time-budget" in given:
            raise ValueError("--time-budget does not apply to --plan, which trains nothing: give it to --run-planned EXPERIMENT, which stops launching when it runs out")
        if args.plan and (stray := [option for option in given if option in RAY_OPTIONS]):
            raise ValueError(f"{stray[0]} applies to a Ray search, not to --plan: its commands run under any launcher")
        return
    valid = PLANNED_OPTIONS[mode]
    if stray := [option for option in given if option != mode and option not in valid]:
        besides = f"only {', '.join(valid)}" if valid else "no other option"
        raise ValueError(f"{stray[0]} does not apply to {mode}, which takes {besides}: the experiment's search.json fixes its settings")


def run_or_collect_planned(args: argparse.Namespace) -> int:
    """--run-planned and --collect: no Ray, no Optuna needed."""
    from leaderboards import write_page

    experiment = args.run_planned or args.collect
    try:
        PlannedExperiment.load(experiment)  # a planned experiment, or one line saying it is not
        # One owner at a time, as for a Ray search's driver: two collects (or a collect beside
        # a runner) would write the same results.csv and study.
        with Lease(Path(experiment), "search driver"):
            if args.run_planned:
                gpus = args.gpus or None
                run_planned(experiment, args.jobs, gpus, args.time_budget)
            results = collect(experiment)
            page = write_page(experiment)
    except (ValueError, DataError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(page.top)
    print(f"\nresults: {Path(experiment) / 'results.csv'}\nleaderboard: {page.path}")
    if (results["status"] == "unfinished").any():
        print(f"{(results['status'] == 'unfinished').sum()} trial(s) not finished: run the same command again to continue them", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 1 if (results["status"] == "failed").any() else 0


# search.json keys that record where and when a search ran, not what it is: a --config file
# made from a finished search (it holds recorded_at) ignores them. A hand-written file that sets
# one meant a setting, and is told where that setting lives rather than silently ignored.
PROVENANCE_KEYS = ("device", "hardware", "precision", "threads", "torch_version", "versions", "git_commit", "recorded_at", "started_at", "command", "launcher")
WHERE_IT_IS_SET = {
    "device": "a search's trials use GPUs by gpus_per_trial (e.g. 1; 0 keeps them on the CPU)",
    "precision": "the trials' precision is a recipe field (recipe: {precision: bf16})",
    "threads": "a trial's CPU threads are its cpus_per_trial",
}


def defaults_from_file(path: str | None, from_file: dict[str, Any]) -> dict[str, Any]:
    """A --config file's settings in the parser's terms (``set_file_defaults`` makes them its
    defaults, so flags given still win)."""
    fields = [f.name for f in dataclasses.fields(SearchSettings)]
    recorded = "recorded_at" in from_file  # a finished search's search.json
    unknown = [key for key in from_file if key not in fields and not (recorded and key in PROVENANCE_KEYS)]
    if unknown and unknown[0] in PROVENANCE_KEYS:
        where = WHERE_IT_IS_SET.get(unknown[0], "a finished search's whole search.json (with its recorded_at) may hold it, and it is then ignored")
        raise ValueError(f"--config {path}: {unknown[0]} is recorded by a search in its search.json, not a setting; {where}")
    if unknown:
        raise unknown_name_error(f"setting in --config {path}:", unknown[0], fields)
    defaults = {key: value for key, value in from_file.items() if key in fields}
    if "recipe" in defaults:
        if not isinstance(defaults["recipe"], dict):
            raise ValueError(f"--config {path}: recipe must be a mapping of recipe fields (epochs: 5), got {defaults['recipe']!r}")
        defaults["recipe"] = [f"{key}={option_text(value)}" for key, value in defaults["recipe"].items()]
    if "baselines" in defaults:  # true: the family's VGG; false: none; a list: those models
        named = defaults.pop("baselines")
        if isinstance(named, list):
            defaults["baselines"] = named
        elif isinstance(named, bool):
            defaults["no_baselines"] = not named
        else:
            raise ValueError(f"--config {path}: baselines must be true (the family's VGG), false (none) or a list of models, got {named!r}")
    return defaults


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    try:
        config_path, from_file = config_option(argv)
        parser.set_file_defaults(defaults_from_file(config_path, from_file), f"--config {config_path}")
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    try:
        check_options_apply(args, parser.options_given(argv))
        if args.collect or args.run_planned:
            return run_or_collect_planned(args)
        plugins = args.plugins
        if args.list_spaces:
            import_plugins(plugins)
            for name in spaces.list_spaces():
                print(f"{name:<12} {spaces.describe(name)}")
            return 0
        if not args.space:
            raise ValueError("--space is required (see --list-spaces)")
        from leaderboards import write_page

        out = Path(args.out or f"experiments/{args.space}")
        _, typed = typed_overrides(None, parse_assignments(args.recipe, "--recipe"))
        recipe = json.loads(json.dumps(typed))  # as search.json stores it, so a resume compares equal
        options = dict(
            data=args.data,
            budget=args.budget,
            recipe=recipe,
            sampler=args.sampler,
            trials=args.trials,
            seeds=args.seeds,
            objective=args.objective,
            max_gmacs=args.max_gmacs,
            time_budget=args.time_budget,
            address=args.address,
            cpus_per_trial=args.cpus_per_trial,
            gpus_per_trial=args.gpus_per_trial,
            workers_per_trial=args.workers_per_trial,
            plugins=plugins,
            baselines=args.baselines if args.baselines is not None else not args.no_baselines,
            retries=args.retries,
            compile=args.compile,
            deterministic=args.deterministic,
            decode=args.decode,
            log=args.log,
            out=str(out),
            resume=args.resume,
            data_seed=args.data_seed,
        )
        if args.plan:
            for trial in plan_experiment(args.space, **options).trials:
                print(trial.command)
            print(f"planned {out}: run the commands above from this folder (or: python -m search.run --run-planned {out} --jobs N), then python -m search.run --collect {out}", file=sys.stderr)
            return 0
        results = run_search(args.space, **options)
    except (ValueError, DataError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except SearchInterrupted as stopped:
        print(stopped, file=sys.stderr)
        return EXIT_INTERRUPTED
    if results.empty:
        print(f"error: --time-budget {args.time_budget} s ran out before any trial was launched; run the same command with --resume (and a longer --time-budget)", file=sys.stderr)
        return 2
    page = write_page(out)
    print(page.top)
    print(f"\nresults: {out / 'results.csv'}\nleaderboard: {page.path}")
    failed = (results["status"] == "failed").sum() if len(results) else 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(exit_status(main))
