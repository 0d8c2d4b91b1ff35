"""A search's settings: checked as a whole, before Ray starts or any file is written."""

from __future__ import annotations

import math
import shlex
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import zoo
from search import spaces
from search.compilation import check_mode
from search.recipes import Recipe, resolve_recipe
from search.stream import check_decode
from zoo.files import check_writable_folder, read_json
from zoo.plugins import Plugin, import_plugins

OBJECTIVES = ("accuracy", "pareto")
# The VGG trained beside every space of its family on the same data and recipe, unless the
# search names its own baselines (zoo names or timm:NAME), --no-baselines, or the space trains it.
DEFAULT_BASELINES = {"cifar": "cifar_vgg16_bn", "imagenet": "vgg16"}
LOGGERS = ("tensorboard", "csv", "mlflow")
SETTINGS_FILE = "search.json"
# What must match for a later command to continue an experiment rather than start another.
EXPERIMENT_KEYS = ("space", "data", "budget", "recipe", "sampler", "seeds", "objective", "baselines")


@dataclass
class SearchSettings:
    """Everything ``run_search`` needs."""

    space: str
    data: str = "cifar10"
    budget: str = "quick"
    recipe: dict[str, Any] = field(default_factory=dict)
    sampler: str | None = None  # None: what the space declares, else grid up to 64 configurations
    trials: int | None = None  # tpe/random: configurations; grid: a cap on grid trials
    seeds: int = 1
    objective: str = "accuracy"
    max_gmacs: float | None = None
    time_budget: float | None = None
    address: str | None = None
    cpus_per_trial: float | None = None
    gpus_per_trial: float | None = None
    workers_per_trial: int | None = None  # data-parallel workers per trial (trial_workers); None: one per GPU above 1
    plugins: list[str] = field(default_factory=list)
    baselines: bool | list[str] = True  # True: the family's VGG; False: none; or the models named
    out: str = "experiments/search"
    resume: bool = False
    data_seed: int = 0
    retries: int = 2  # Ray restarts a trial that crashed (not one refused for bad input) this many times
    compile: str = "off"  # how trials run (search.compilation), not what they compute: a resume may change it
    deterministic: bool = False  # trials use only kernels that repeat bitwise (search.train); how they run
    decode: str = "workers"  # where streamed trials decode JPEG training crops (search.stream.DECODE_PLACES); how they run
    log: list[str] = field(default_factory=list)  # experiment loggers (LOGGERS), how a search is watched, not what it is

    def command(self) -> str:
        """The ``search.run`` command line that reproduces the search."""
        words = ["python", "-m", "search.run", "--space", self.space, "--data", self.data, "--budget", self.budget]
        if self.recipe:
            words += ["--recipe", *(f"{k}={','.join(map(str, v)) if isinstance(v, (list, tuple)) else v}" for k, v in sorted(self.recipe.items()))]
        words += ["--sampler", str(self.sampler), "--seeds", str(self.seeds)]
        for name in ("trials", "max_gmacs", "time_budget", "cpus_per_trial", "gpus_per_trial", "workers_per_trial"):
            if getattr(self, name) is not None:
                words += [f"--{name.replace('_', '-')}", str(getattr(self, name))]
        if self.objective != "accuracy":
            words += ["--objective", self.objective]
        if self.plugins:
            words += ["--plugins", ",".join(self.plugins)]
        if self.baselines is False or self.baselines == []:
            words.append("--no-baselines")
        elif isinstance(self.baselines, list):
            words += ["--baselines", ",".join(self.baselines)]
        if self.compile != SearchSettings.compile:
            words += ["--compile", self.compile]
        if self.deterministic:
            words.append("--deterministic")
        if self.decode != SearchSettings.decode:
            words += ["--decode", self.decode]
        if self.retries != SearchSettings.retries:
            words += ["--retries", str(self.retries)]
        if self.data_seed != SearchSettings.data_seed:
            words += ["--data-seed", str(self.data_seed)]
        if self.log:
            words += ["--log", ",".join(self.log)]
        words += ["--out", self.out]
        return shlex.join(words)


def search_recipe(settings: SearchSettings) -> Recipe:
    """The recipe of a search's trials: its budget for its space's model family, with --recipe."""
    return resolve_recipe(settings.budget, settings.recipe, spaces.space_family(settings.space))


def trial_workers(workers_per_trial: int | None, gpus_per_trial: float | None) -> int:
    """How many data-parallel workers train each trial: ``--workers-per-trial``, else one per GPU
    when ``--gpus-per-trial`` is above 1, else one."""
    if workers_per_trial is not None:
        return workers_per_trial
    return int(gpus_per_trial) if gpus_per_trial is not None and gpus_per_trial > 1 else 1


def check_workers(settings: SearchSettings) -> None:
    """A trial's workers each drive one whole GPU (NCCL cannot put two ranks on one device)."""
    workers, gpus = settings.workers_per_trial, settings.gpus_per_trial
    if workers is not None and not (isinstance(workers, int) and not isinstance(workers, bool) and workers >= 1):
        raise ValueError(f"--workers-per-trial must be a whole number of 1 or more, got {workers!r}")
    if gpus is not None and gpus > 1 and gpus != int(gpus):
        raise ValueError(f"--gpus-per-trial {gpus:g}: above 1, a trial's GPUs are its workers' (one each), so a whole number; fractions below 1 pack several one-device trials per GPU")
    world = trial_workers(workers, gpus)
    if world > 1 and gpus and gpus != world:
        raise ValueError(f"--gpus-per-trial {gpus:g} with --workers-per-trial {world}: each worker drives one whole GPU, so give --gpus-per-trial {world}")


def baseline_models(settings: SearchSettings) -> list[str]:
    """The models trained beside the space (before the space's own are taken out)."""
    if isinstance(settings.baselines, list):
        return list(settings.baselines)
    return [DEFAULT_BASELINES[spaces.space_family(settings.space)]] if settings.baselines else []


def check_baselines(settings: SearchSettings) -> None:
    """Each baseline a model that exists here, of the space's family (timm's networks take the
    space's recipe, so they fit any)."""
    if not isinstance(settings.baselines, (bool, list)) or not all(isinstance(name, str) and name for name in baseline_models(settings)):
        raise ValueError(f"--baselines must name models (zoo names or timm:NAME), got {settings.baselines!r}")
    family = spaces.space_family(settings.space)
    for name in baseline_models(settings):
        card = zoo.model_card(name)  # unknown: one line with the near matches
        if card.kind != "timm" and card.family != family:
            raise ValueError(f"--baselines {name}: one of the {card.family} nets, but {settings.space} trains {family} nets (one family per search: its budgets set the resolution); use a {family} model or timm:NAME")


def validate(settings: SearchSettings) -> list[Plugin]:
    """Bad input raises ValueError with one line, before Ray starts or any file is written."""
    plugins = import_plugins(settings.plugins)
    spaces.get_space(settings.space)
    check_baselines(settings)
    if settings.sampler is not None and settings.sampler not in spaces.SAMPLERS:
        raise ValueError(f"unknown sampler {settings.sampler!r}; valid: {', '.join(spaces.SAMPLERS)}")
    if settings.objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {settings.objective!r}; valid: {', '.join(OBJECTIVES)}")
    search_recipe(settings)
    check_mode(settings.compile)
    check_decode(settings.decode)
    for logger in settings.log:
        if logger not in LOGGERS:
            raise ValueError(f"unknown --log {logger!r}; valid: {', '.join(LOGGERS)}")
    if "mlflow" in settings.log:
        try:
            import mlflow  # noqa: F401
        except ImportError:
            raise ValueError("--log mlflow needs MLflow: pip install -e \".[mlflow]\" (mlflow-skinny; no server needed)") from None
    for name in ("trials", "seeds", "max_gmacs", "time_budget", "cpus_per_trial"):
        value = getattr(settings, name)
        if value is not None and not (isinstance(value, (int, float)) and value > 0 and math.isfinite(value)):
            raise ValueError(f"--{name.replace('_', '-')} must be a positive number, got {value!r}")
    for name in ("retries", "data_seed"):
        value = getattr(settings, name)
        if not (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
            raise ValueError(f"--{name.replace('_', '-')} must be 0 or more, got {value!r}")
    if settings.gpus_per_trial is not None and not (0 <= settings.gpus_per_trial and math.isfinite(settings.gpus_per_trial)):
        raise ValueError(f"--gpus-per-trial must be 0 or more, got {settings.gpus_per_trial!r}")
    check_workers(settings)
    out = Path(settings.out)
    check_writable_folder(out, "--out")
    if settings.resume and not (out / SETTINGS_FILE).exists():
        raise ValueError(f"--resume: no experiment in {out} (it has no {SETTINGS_FILE})")
    return plugins


def continue_experiment(settings: SearchSettings, out: Path) -> bool:
    """Whether ``out`` holds this search already; refuse one that holds another. A resumed search
    keeps the sampler and the workers per trial it started with."""
    path = out / SETTINGS_FILE
    if not path.exists():
        return False
    mine = asdict(settings)
    stored = refuse_other_search(out, {key: mine[key] for key in EXPERIMENT_KEYS if not (key == "sampler" and settings.sampler is None)}, "--out")
    # Per-worker BatchNorm statistics make a trial on several workers another computation: its
    # checkpoints resume only on as many. A resume that does not say keeps the number.
    started = trial_workers(stored.get("workers_per_trial"), stored.get("gpus_per_trial"))
    if settings.workers_per_trial is None and settings.gpus_per_trial is None and started > 1:
        settings.workers_per_trial = started
    asked = trial_workers(settings.workers_per_trial, settings.gpus_per_trial)
    if started != asked:
        raise ValueError(f"{out} trains each trial on {started} worker(s), not {asked}; resume with --workers-per-trial {started} or use another --out")
    settings.sampler = stored["sampler"]
    return True


def read_settings(out: Path) -> dict[str, Any]:
    """An experiment's search.json, or one line naming it when it cannot be read."""
    return read_json(Path(out) / SETTINGS_FILE, f"a search's settings ({SETTINGS_FILE}, written by search.run)")


def refuse_other_search(out: Path, expected: dict[str, Any], elsewhere: str) -> dict[str, Any]:
    """The settings stored in ``out``, refused (ValueError naming the first difference and the
    option ``elsewhere`` that picks another folder) unless they hold ``expected``: a tiny dry run
    left in a real experiment's folder must not pass for its finished trials."""
    stored = read_settings(out)
    for key, value in expected.items():
        if stored.get(key) != value:
            raise ValueError(f"{out} holds a search with {key}={stored.get(key)!r}, not {value!r}; use another {elsewhere}")
    return stored
