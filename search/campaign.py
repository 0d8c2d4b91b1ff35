"""The GPU campaign: the leaderboards re-run at budgets that settle them, as a list of items in
priority order, each a planned grid (``search.planned``) or a probe of a grid's trained nets
(``search.probe``), that any number of short GPU sessions advance in turn.

    python -m search.campaign status [--root DIR]                      # what is done, what is next
    python -m search.campaign run --data .data/cifar10-jpeg --minutes 8.5 [--jobs N] [--bundle DIR]
    python -m search.campaign publish [--root DIR]                     # finished tables into leaderboards/*-gpu/
    python -m search.campaign run --dry-run --root /tmp/c --minutes 1  # every step, tiny, on the CPU

A run takes the first item that is not done, plans it into ``ROOT/ITEM`` unless planned, runs
its unfinished ``search.train`` commands on the GPU until ``--minutes`` are nearly spent (the
running ones then stop with a checkpoint), collects its results and page, and goes on to the
next item while time is left. Finished trials are never re-run, so each session continues what
the last one left: carry ``ROOT`` to the device with the data, bring it back with ``--bundle``.
A probe item waits until its grid is done, then probes its nets one at a time, writing each
net's rows as it goes. ``publish`` copies every item's tables (results, curves, settings; a
probe's table and probe.json) to ``leaderboards/PAGE-gpu/``, beside the CPU-budget page of the
same name, never over it; ``python -m leaderboards`` then renders them, with the card's name in
each page's provenance. A dry run publishes into its own root (``ROOT/leaderboards``).

Needs neither Ray nor Optuna (a bare PyTorch image has neither).
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch

import zoo
from leaderboards.schema import read_table
from search.planned import (
    PLAN_FILE,
    REPOSITORY,
    PlannedExperiment,
    Rebundler,
    collect,
    finished_summary,
    place_in_repository,
    plan_unless_planned,
    run_planned,
)
from search.probe import finished_run, lesion_probe, probed_by, response_probe, runs_provenance, write_probe
from search.provenance import now
from search.settings import SETTINGS_FILE, refuse_other_search
from zoo.commandline import OneLineParser, exit_status
from zoo.files import check_writable_folder

DEFAULT_ROOT = "experiments/campaign"
DRY_RUN_ROOT = "experiments/campaign-dry-run"  # never DEFAULT_ROOT: tiny trials there would pass for done items
# Quick-budget CIFAR trials use a small part of an H100; until the GPU check's packing step has
# measured the best count on a card, four at once.
DEFAULT_GPU_JOBS = 4
LEADERBOARDS = REPOSITORY / "leaderboards"
# Campaign pages stand beside the CPU-budget ones they re-run (leaderboards/shortcuts-gpu/ beside
# leaderboards/shortcuts/), never over them: the two budgets answer the same claims differently.
PAGE_SUFFIX = "-gpu"
TABLES = ("results.csv", "curves.csv", SETTINGS_FILE)


@dataclass(frozen=True)
class Item:
    """One entry of the campaign: a grid search's settings and the page it feeds."""

    name: str  # the experiment folder under the root; its leaderboard page is NAME-gpu
    space: str
    budget: str
    seeds: int
    why: str  # what it settles, for the status listing
    recipe: dict[str, Any] = field(default_factory=dict)
    trials: int | None = None  # a cap on the grid, in grid order
    baselines: bool = True

    def settings(self, data: str, out: Path, gpus_per_trial: float | None) -> dict[str, Any]:
        return {"data": data, "budget": self.budget, "seeds": self.seeds, "recipe": dict(self.recipe), "trials": self.trials, "baselines": self.baselines, "out": str(out), "gpus_per_trial": gpus_per_trial}

    def what(self) -> str:
        return f"{self.space}, {self.budget}, {self.seeds} seed(s)"

    def fixed(self) -> dict[str, Any]:
        """The stored settings an experiment must hold to be this item (whatever its data path)."""
        return {"space": self.space, "budget": self.budget, "seeds": self.seeds, "recipe": dict(self.recipe), "baselines": self.baselines}

    unit = "trials finished"

    def pending(self) -> str:
        return "not planned"

    def page(self) -> tuple[str, tuple[str, ...]]:
        """The leaderboard folder it publishes into and its tables (the first one says it has results)."""
        return f"{self.name}{PAGE_SUFFIX}", TABLES

    def state(self, root: Path, items: tuple[Item | ProbeItem, ...]) -> ItemState:
        experiment = root / self.name
        if not (experiment / PLAN_FILE).exists():
            return ItemState(self, 0, 0, False)
        refuse_other_search(experiment, self.fixed(), "--root")  # a dry run's trials are not this item's
        plan = PlannedExperiment.load(experiment)
        finished = sum(finished_summary(command.out(plan.root)) is not None for command in plan.trials)
        return ItemState(self, len(plan.trials), finished, finished == len(plan.trials) > 0)


@dataclass(frozen=True)
class ProbeItem:
    """An entry that probes the nets a grid item trained (``search.probe``), once that item is
    done; each run's rows are written as soon as it is probed, so a session continues the last."""

    name: str  # the folder under the root
    probe: str  # responses or lesion; its leaderboard page is PROBE-gpu
    source: str  # the item whose finished runs it probes
    why: str
    depths: tuple[int, ...] | None = None  # only the source's nets of these depths (None: all)
    images: int | None = 1000  # validation images per evaluation (None: the whole split)
    draws: int = 5  # lesion: random draws of k deleted units, for each k

    def what(self) -> str:
        return f"{self.probe} probe of {self.source}'s nets" + (f" at depth {', '.join(map(str, self.depths))}" if self.depths else "")

    def runs(self, root: Path) -> list[Path]:
        """The source's finished runs this probe covers, in plan order."""
        plan = PlannedExperiment.load(root / self.source)
        chosen = []
        for command in plan.trials:
            summary = finished_summary(command.out(plan.root))
            if summary is not None and summary["status"] == "completed" and (self.depths is None or summary["architecture"]["depth"] in self.depths):
                chosen.append(command.out(plan.root))
        return chosen

    def probe_run(self, run: Path, device: torch.device) -> pd.DataFrame:
        if self.probe == "responses":
            return response_probe(run, self.images or 1000, device)
        return lesion_probe(run, self.draws, seed=0, images=self.images, device=device)

    unit = "runs probed"

    def pending(self) -> str:
        return f"waits for {self.source}"

    def page(self) -> tuple[str, tuple[str, ...]]:
        return f"{self.probe}{PAGE_SUFFIX}", (f"{self.probe}.csv", "probe.json")

    def table(self, root: Path) -> pd.DataFrame:
        """The rows probed so far (empty before the first net)."""
        path = root / self.name / f"{self.probe}.csv"
        return read_table(path) if path.exists() else pd.DataFrame({"run": pd.Series(dtype=str)})

    def state(self, root: Path, items: tuple[Item | ProbeItem, ...], runs: list[Path] | None = None) -> ItemState:
        """Nothing to probe until the source is done; then its runs, and how many are in the table."""
        source = next((candidate for candidate in items if candidate.name == self.source), None)
        if source is None or not source.state(root, items).done:
            return ItemState(self, 0, 0, False)
        names = {run.name for run in (self.runs(root) if runs is None else runs)}
        probed = set(self.table(root)["run"]) & names
        return ItemState(self, len(names), len(probed), len(probed) == len(names))


# In priority order (issue 12, section 4). Sizes come from the quick recipe's epochs on the full
# 40k training split; a session advances the first unfinished item, then the next.
CAMPAIGN = (
    Item("shortcuts", "shortcuts", "quick", 3, "A/B/C/plain at 20 and 56 layers (He et al. Table 3 on CIFAR), with the VGG-16-BN baseline"),
    Item("depth", "depth", "quick", 3, "plain vs residual at 20-110 layers: degradation (He et al. Fig. 6), with curves", baselines=False),
    # Table 6 at the paper's schedule (182 epochs, lr 0.1 /10 at 50% and 75%, fp32 with TF32 off),
    # as the paper trained it: on all 45k non-test images, no validation carve (the schedule is
    # fixed, nothing is chosen), ranked on the 5k carved test split.
    Item("table6", "depth", "paper", 1, "ResNet-20/32/44/56/110 at the paper's budget against Table 6 and akamaster", {"val_size": 0}, baselines=False),
    Item("preact", "preact", "quick", 3, "Identity Mappings' five orderings at ResNet-110 and -164 (its Table 2)", baselines=False),
    # On the run's device (the GPU; the CPU in a dry run): seconds per net; resumed net by net
    # across sessions.
    ProbeItem("depth-responses", "responses", "depth", "layer responses of the plain and residual nets at 20-110 (He et al. Fig. 7, section 4.2)"),
    ProbeItem("depth-lesion", "lesion", "depth", "accuracy with residual branches deleted, ResNet-56 and -110 (Veit et al.)", depths=(56, 110)),
    # Optional, last: 30-90 GPU-minutes, so several sessions (trials checkpoint within epochs).
    Item("very_deep", "very_deep", "paper", 1, "ResNet-1202 against ResNet-110 at the paper's budget (He et al. section 4.2: 7.93% vs 6.43% test error, overfitting)", {"val_size": 0}, baselines=False),
)
DRY_RUN_ITEMS = tuple(  # tiny, with each item's own recipe changes (table6 keeps no validation)
    Item(item.name, item.space, "smoke", 1, item.why, {"epochs": 1, "train_subset": 64, "val_size": 32, "test_size": 32, "eval_batch_size": 32, **item.recipe}, trials=2, baselines=False)
    if isinstance(item, Item) else ProbeItem(item.name, item.probe, item.source, item.why, images=8, draws=1)
    for item in CAMPAIGN
)


@dataclass(frozen=True)
class ItemState:
    item: Item | ProbeItem
    planned: int  # trials in its plan, or runs to probe (0: not planned yet, or its source not done)
    finished: int
    done: bool

    def describe(self) -> str:
        progress = f"{self.finished}/{self.planned} {self.item.unit}" if self.planned else self.item.pending()
        return f"{self.item.name}: {'done' if self.done else progress} ({self.item.what()}): {self.item.why}"


def campaign_state(root: Path, items: tuple[Item | ProbeItem, ...] = CAMPAIGN) -> list[ItemState]:
    return [item.state(root, items) for item in items]


def next_item(root: Path, items: tuple[Item | ProbeItem, ...] = CAMPAIGN) -> Item | ProbeItem | None:
    """The first item that is not done (planned or not), or None when the campaign is complete."""
    return next((state.item for state in campaign_state(root, items) if not state.done), None)


def advance_probe(root: Path, item: ProbeItem, items: tuple[Item | ProbeItem, ...], device: torch.device, seconds: float, say: Any) -> bool:
    """Probe the source's runs not yet in the item's table on ``device``, one at a time while
    ``seconds`` last; whether there was anything to do."""
    start, started_at, out = time.monotonic(), now(), root / item.name
    if not item.state(root, items).planned:
        say(f"{item.name}: {item.pending()}")
        return False
    runs, table = item.runs(root), item.table(root)
    probed = set(table["run"])
    # What trained each net in the table, by its folder in the campaign (probe.json lists them all).
    trained = {os.path.relpath(run, root): finished_run(run) for run in runs if run.name in probed}
    longest = 0.0  # the slowest net probed so far: the next one starts only if that much time is left
    for run in (run for run in runs if run.name not in probed):
        if time.monotonic() - start + longest > seconds:
            break
        began = time.monotonic()
        table = pd.concat([table, item.probe_run(run, device)], ignore_index=True)
        longest = max(longest, time.monotonic() - began)
        extra = {"seed": 0} if item.probe == "lesion" else {}
        trained[os.path.relpath(run, root)] = finished_run(run)
        write_probe(out, table, {**probed_by(f"python -m search.campaign run (item {item.name})", started_at, device), **runs_provenance(item.probe, trained, table), **extra})
    say(item.state(root, items, runs).describe())
    return True


def advance(root: Path, items: tuple[Item | ProbeItem, ...], data: str, jobs: int, device: str, seconds: float, say: Any = print) -> list[str]:
    """Work through unfinished items until ``seconds`` are nearly spent; returns the items touched.

    The running trials are stopped with a checkpoint (SIGTERM, as ``--run-planned`` handles it)
    shortly before the end, and every touched item is collected into results.csv and its page.
    """
    start = time.monotonic()
    reserve = max(5.0, 0.1 * seconds)  # collecting and writing pages after the stop
    touched: list[str] = []
    gpus = ["0"] if device == "cuda" else None
    for item in items:
        left = seconds - (time.monotonic() - start) - reserve
        if left <= reserve:
            break
        state = item.state(root, items)
        if state.done:
            continue
        if isinstance(item, ProbeItem):
            if advance_probe(root, item, items, torch.device(device), left, say):
                touched.append(item.name)
            continue
        experiment = root / item.name
        planned = plan_unless_planned(item.space, **item.settings(data, experiment, 1.0 if device == "cuda" else None))
        if planned is not None:
            say(f"{item.name}: planned {len(planned.trials)} trials into {experiment}")
        touched.append(item.name)
        stop = threading.Timer(left + 0.5 * reserve, os.kill, (os.getpid(), signal.SIGTERM))
        stop.start()
        try:
            run_planned(experiment, jobs, gpus, time_budget=left, say=lambda line, name=item.name: say(f"{name}: {line}"))
        finally:
            stop.cancel()
        collect(experiment)
        say(item.state(root, items).describe())
    return touched


def publish(root: Path, items: tuple[Item | ProbeItem, ...] = CAMPAIGN, into: Path = LEADERBOARDS) -> list[Path]:
    """Copy each collected item's tables to ``into/ITEM-gpu/``, a probe's to ``into/PROBE-gpu/``
    (what ``python -m leaderboards`` renders)."""
    written = []
    for item in items:
        experiment = root / item.name
        folder, tables = item.page()
        if not (experiment / tables[0]).exists():
            continue
        item.state(root, items)  # refuses an experiment (or a probe's source) that holds another search
        target = into / folder
        target.mkdir(parents=True, exist_ok=True)
        for name in tables:
            if (experiment / name).exists():
                zoo.write_atomically(target / name, (experiment / name).read_text())
                written.append(target / name)
    return written


RUN_OPTIONS = ("--data", "--minutes", "--jobs", "--bundle")  # what only `run` reads: refused beside status and publish


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m search.campaign", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=("status", "run", "publish"))
    parser.add_argument("--root", help=f"the campaign's experiments (default {DEFAULT_ROOT}; {DRY_RUN_ROOT} for a dry run)")
    parser.add_argument("--data", default=".data/cifar10-jpeg", help="the CIFAR-10 folder (ImageFolder train/ or cifar-10-batches-py/)")
    parser.add_argument("--minutes", type=float, default=8.5, help="run: the whole run ends by then")
    parser.add_argument("--jobs", type=int, default=None, help=f"run: trials at once (default {DEFAULT_GPU_JOBS} on the GPU, 1 on the CPU; the GPU check's packing step measures the best)")
    parser.add_argument("--bundle", metavar="DIR", help="run: pack the campaign's experiments into tar.gz parts of <= 15 MiB in DIR")
    parser.add_argument("--dry-run", action="store_true", help="every item at a tiny size, on the CPU, synthetic data (CI)")
    args = parser.parse_args(argv)
    given_root = Path(args.root or (DRY_RUN_ROOT if args.dry_run else DEFAULT_ROOT))
    root = given_root.resolve()
    items = DRY_RUN_ITEMS if args.dry_run else CAMPAIGN
    try:
        if args.action != "run" and (stray := [option for option in parser.options_given(argv) if option in RUN_OPTIONS]):
            raise ValueError(f"{stray[0]} applies only to run; {args.action} takes --root and --dry-run")
        if not (math.isfinite(args.minutes) and args.minutes > 0):
            raise ValueError(f"--minutes must be a positive number, got {args.minutes}")
        if args.jobs is not None and args.jobs < 1:
            raise ValueError(f"--jobs must be 1 or more, got {args.jobs}")
        if args.action == "run":
            check_writable_folder(given_root, "--root")  # as given: resolved, a link to nothing would lead anywhere
            if args.bundle:
                check_writable_folder(args.bundle, "--bundle")
        return act(args, root, items)
    except ValueError as error:  # an experiment under the root that holds another search
        print(f"error: {error}", file=sys.stderr)
        return 2


def act(args: argparse.Namespace, root: Path, items: tuple[Item | ProbeItem, ...]) -> int:
    if args.action == "status":
        for state in campaign_state(root, items):
            print(state.describe())
        upcoming = next_item(root, items)
        print(f"next: {upcoming.name}" if upcoming else "the campaign is complete")
        return 0
    if args.action == "publish":
        if not root.is_dir():  # a bundle unpacked elsewhere: saying nothing would look like success
            print(f"error: --root {root}: no campaign there; a bundle unpacked at the repository root puts it in {DRY_RUN_ROOT if args.dry_run else DEFAULT_ROOT}", file=sys.stderr)
            return 2
        # A dry run's tiny tables never reach the committed leaderboards.
        written = publish(root, items, root / "leaderboards" if args.dry_run else LEADERBOARDS)
        for path in written:
            print(path)
        if not written:
            print(f"nothing to publish: no item under {root} has been collected yet", file=sys.stderr)
        return 0
    device = "cpu" if args.dry_run else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        print("error: no CUDA device here; the campaign runs on a GPU machine (--dry-run runs it on the CPU)", file=sys.stderr)
        return 2
    data = "synthetic" if args.dry_run else args.data
    jobs = args.jobs or (1 if args.dry_run else DEFAULT_GPU_JOBS)
    # Unpacked at the repository root here, the campaign lands where `status` and `publish` look.
    place = place_in_repository(root, DRY_RUN_ROOT if args.dry_run else DEFAULT_ROOT)
    rebundler = Rebundler({place: root}, Path(args.bundle)) if args.bundle else None

    def say_and_bring_back(line: str) -> None:
        """Each line of news, and with --bundle the bundle at most once a minute while the run goes on."""
        print(line, flush=True)
        if rebundler is not None:
            rebundler.maybe()

    touched = advance(root, items, data, jobs, device, args.minutes * 60, say_and_bring_back)
    if rebundler is not None:
        parts = rebundler.now()
        print(f"bundled {len(parts)} part(s) into {args.bundle}; `cat bundle.tar.gz.part* | tar xz` at the repository root unpacks them into {place}")
    upcoming = next_item(root, items)
    print(f"advanced: {', '.join(touched) or 'nothing'}; next: {upcoming.name if upcoming else 'none, the campaign is complete'}")
    return 0


if __name__ == "__main__":
    sys.exit(exit_status(main))
