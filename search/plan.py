"""Where a search is planned: its design (grid or sampled, and why), the trials a grid enqueues
(configurations x seeds, under the MACs ceiling, plus the baseline), and an estimate of the wall
time. Nothing here trains or starts Ray."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

import zoo
from search import spaces
from search.cluster import Resources
from search.config import split_config
from search.measure import calibrated_macs_per_second
from search.provenance import resolve_precision
from search.recipes import resolve_recipe
from search.settings import SearchSettings, baseline_models, search_recipe

GRID_LIMIT = 64  # an undeclared space with more configurations than this is sampled, not gridded
DEFAULT_SAMPLED_TRIALS = 10


@dataclass(frozen=True)
class PlannedTrial:
    """A trial to enqueue: the space's parameters, and the seed (and baseline model) as Optuna
    user attributes, so the study's parameters are the architecture choices only."""

    params: dict[str, Any]
    seed: int
    baseline: str | None = None

    def user_attrs(self) -> dict[str, Any]:
        return {"seed": self.seed, **({"baseline": self.baseline} if self.baseline else {})}


@dataclass
class Plan:
    sampler: str
    why: str  # the reason for the design, printed in the plan line
    trials: list[PlannedTrial] = field(default_factory=list)  # enqueued ones, grid and baselines
    total: int = 0  # all trials, enqueued and sampled
    notes: list[str] = field(default_factory=list)


def choose_sampler(settings: SearchSettings) -> tuple[str, str]:
    """(sampler, why): asked for, declared by the space, or grid up to GRID_LIMIT configurations."""
    if settings.sampler:
        return settings.sampler, "as asked"
    declared = spaces.declared_sampler(settings.space)
    if declared:
        return declared, f"declared by the space {settings.space!r}"
    try:
        count = len(spaces.grid_points(spaces.get_space(settings.space)))
    except spaces.GridError:
        return "tpe", "the space has continuous choices"
    if count <= GRID_LIMIT:
        return "grid", f"{count} configurations (a grid up to {GRID_LIMIT})"
    return "tpe", f"{count} configurations (more than {GRID_LIMIT}: sampled)"


def make_plan(settings: SearchSettings) -> Plan:
    """The trials of a search; bad combinations raise ValueError before anything starts."""
    sampler, why = choose_sampler(settings)
    plan = Plan(sampler, why)
    function = spaces.get_space(settings.space)
    size = search_recipe(settings).image_size  # MACs at the size the trials train at
    if sampler == "grid":
        configs = spaces.enumerate_space(function)  # GridError (a ValueError) for continuous spaces
        for config in configs:
            check_configuration(settings, config)
        if settings.max_gmacs is not None:
            costs = [gmacs_of(spaces.strip_internal(c), size) for c in configs]
            kept = [c for c, cost in zip(configs, costs) if cost <= settings.max_gmacs]
            if not kept:
                raise ValueError(f"--max-gmacs {settings.max_gmacs} excludes every configuration of {settings.space} (the cheapest costs {min(costs):.4f} GMACs)")
            if len(kept) < len(configs):
                plan.notes.append(f"--max-gmacs {settings.max_gmacs}: {len(configs) - len(kept)} of {len(configs)} configurations over the ceiling, not trained")
            configs = kept
        plan.trials = [PlannedTrial(config["__params__"], seed) for config in configs for seed in range(settings.seeds)]
        if settings.trials is not None and settings.trials < len(plan.trials):
            plan.notes.append(f"--trials {settings.trials} caps the grid of {len(plan.trials)} trials (grid order: the first ones run)")
            plan.trials = plan.trials[: settings.trials]
    elif settings.seeds != 1:
        raise ValueError(f"--seeds {settings.seeds} applies to grid designs; --sampler {sampler} trains each sampled configuration once")
    trained = {config["model"] for config in spaces.all_configs(function)} if sampler == "grid" else set()
    for baseline in baseline_models(settings):
        if baseline in trained:  # the space trains it already (the imagenet grid's VGG-16)
            continue
        baseline_gmacs = zoo.complexity(baseline, input_size=size).gmacs
        if settings.max_gmacs is not None and baseline_gmacs > settings.max_gmacs:  # the ceiling holds for every trial
            plan.notes.append(f"baseline: {baseline} ({baseline_gmacs:.3f} GMACs) is over --max-gmacs {settings.max_gmacs}, not trained")
        else:
            plan.trials += [PlannedTrial({}, seed, baseline) for seed in range(settings.seeds)]
            plan.notes.append(f"baseline: {baseline} x {settings.seeds} seed(s), same data and recipe (--no-baselines to skip)")
    sampled = 0 if sampler == "grid" else settings.trials or DEFAULT_SAMPLED_TRIALS
    plan.total = len(plan.trials) + sampled
    return plan


def check_configuration(settings: SearchSettings, config: dict[str, Any]) -> None:
    """A grid configuration's network (built on the meta device: no memory, no time) and recipe,
    checked before anything starts: a user's space that asks for depth 21 is one line here, not
    a trial refused after Ray has started."""
    model, overrides, recipe_overrides = split_config(spaces.strip_internal(config))
    try:
        with torch.device("meta"):
            zoo.create_model(model, **overrides)
        resolve_recipe(settings.budget, {**settings.recipe, **recipe_overrides}, spaces.space_family(settings.space))
    except ValueError as error:
        raise ValueError(f"space {settings.space}, configuration {config['__params__']}: {error}") from None


def gmacs_of(config: dict[str, Any], input_size: int | None = None) -> float:
    """GMACs of a configuration at ``input_size`` (default: its model's own size)."""
    model, overrides, _ = split_config(config)
    return zoo.complexity(model, input_size=input_size, **overrides).gmacs


def planned_macs(settings: SearchSettings, trial: PlannedTrial) -> float:
    size = search_recipe(settings).image_size
    if trial.baseline:
        return float(zoo.complexity(trial.baseline, input_size=size).macs)
    for config in spaces.enumerate_space(spaces.get_space(settings.space)):
        if config["__params__"] == trial.params:
            return gmacs_of(spaces.strip_internal(config), size) * 1e9
    return float(zoo.complexity("resnet20").macs)


def estimate_minutes(settings: SearchSettings, plan: Plan, resources: Resources) -> str:
    """Wall-time estimate from each planned trial's MACs, the epochs and a throughput measured
    here, now (a trial of several workers at their ideal speed-up)."""
    at_once, threads, gpus_per_trial = resources.at_once, resources.threads, resources.gpus_per_trial
    if gpus_per_trial > 0 and not torch.cuda.is_available():
        return "unknown (trials run on GPUs this driver cannot measure)"
    recipe = search_recipe(settings)
    device = torch.device("cuda" if gpus_per_trial > 0 else "cpu")
    rate = calibrated_macs_per_second(device, resolve_precision(recipe.precision, device), threads) * resources.workers
    macs = [planned_macs(settings, trial) for trial in plan.trials]
    sampled = plan.total - len(plan.trials)  # tpe/random trials are not known yet: priced as the space's first configuration
    if sampled:
        try:
            first = gmacs_of(spaces.all_configs(spaces.get_space(settings.space))[0], recipe.image_size) * 1e9
        except spaces.GridError:  # continuous choices: priced as a ResNet-20
            first = float(zoo.complexity("resnet20").macs)
        macs += [first] * sampled
    images = recipe.epochs * (recipe.train_subset or 40000)
    seconds = sum(m * images / rate * 1.1 + 5 for m in macs) / at_once
    return f"~{seconds / 60:.0f} min ({rate / 1e9:.1f} training GMACs/s per trial measured here{f', {resources.workers} workers at ideal scaling' if resources.workers > 1 else ''}, {images:,} training images per trial)"
