"""The search engine: Optuna samples configurations, Ray Tune runs them as trials.

Two designs, both a ``Tuner`` driven by ``OptunaSearch`` over a journal-file Optuna storage in the
experiment directory:

- grid: every configuration of the space x the same K seeds, enqueued in the study, no early
  stopping, so comparisons are paired and complete;
- tpe / random: ``trials`` sampled configurations with ASHA early stopping on validation accuracy
  (none for ``objective="pareto"``, where Ray drops intermediate results).

Each trial is one ``search.train.train`` call; its per-epoch checkpoint is what the trial
reports to Ray, so Ray's retries and ``Tuner.restore`` resume it from the last epoch.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import math
import os
import shlex
import socket
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import ray
from ray import tune
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search.optuna import OptunaSearch

import zoo
from search import spaces
from search.data import describe_source, load_dataset
from search.faults import fault, wait_at_barrier
from search.recipes import resolve_recipe
from search.results import read_results, result_row, results_frame, write_results
from search.train import TrialConfig, hardware_name, resolve_precision, train

SAMPLERS = ("grid", "tpe", "random")
OBJECTIVES = ("accuracy", "pareto")
GRID_BY_DEFAULT = ("shortcuts", "depth", "blocks", "vgg")
STUDY_FILE = "optuna.journal"
SETTINGS_FILE = "search.json"
SAMPLER_SEED = 0  # the same seed gives the same sampled configurations


@dataclass
class SearchSettings:
    """Everything ``run_search`` needs; validated as a whole before anything is written."""

    space: str
    data: str = "cifar10"
    budget: str = "quick"
    recipe: dict[str, Any] = field(default_factory=dict)
    sampler: str | None = None  # None: grid for the paper's spaces, tpe otherwise
    trials: int | None = None  # tpe/random: configurations; grid: a cap on grid trials
    seeds: int = 1
    objective: str = "accuracy"
    max_gmacs: float | None = None
    time_budget: float | None = None
    address: str | None = None
    cpus_per_trial: float | None = None
    gpus_per_trial: float | None = None
    plugins: list[str] = field(default_factory=list)
    baselines: bool = True
    out: str = "experiments/search"
    resume: bool = False
    data_seed: int = 0


# ---------------------------------------------------------------------------------------------
# Validation and plugins


@dataclass(frozen=True)
class Plugin:
    """A user's module and the file the driver imported it from."""

    module: str
    path: str  # the module file, or the package directory


def import_plugins(modules: list[str]) -> list[Plugin]:
    """Import users' modules in the driver so the blocks and spaces they register exist here."""
    plugins = []
    for module in modules:
        try:
            imported = importlib.import_module(module)
        except ImportError as error:
            raise ValueError(f"cannot import plugin module {module!r}: {error}") from None
        source = Path(imported.__file__ or module)
        plugins.append(Plugin(module, str(source.parent if source.name == "__init__.py" else source)))
    return plugins


def load_plugins(plugins: list[Plugin]) -> None:
    """In a worker: import each plugin by name (shipped in the job's runtime environment), or,
    where it is not importable, from the driver's file (same host or shared storage)."""
    for plugin in plugins:
        if plugin.module in sys.modules:
            continue
        try:
            importlib.import_module(plugin.module)
            continue
        except ImportError:
            pass
        path = Path(plugin.path)
        location = path / "__init__.py" if path.is_dir() else path
        spec = importlib.util.spec_from_file_location(plugin.module, location, submodule_search_locations=[str(path)] if path.is_dir() else None)
        if spec is None or spec.loader is None or not location.exists():
            raise ImportError(f"plugin {plugin.module!r} is neither importable here nor at {plugin.path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[plugin.module] = module
        spec.loader.exec_module(module)


def validate(settings: SearchSettings) -> list[Plugin]:
    """Bad input raises ValueError with one line, before Ray starts or any file is written."""
    plugins = import_plugins(settings.plugins)
    spaces.get_space(settings.space)
    if settings.sampler is not None and settings.sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {settings.sampler!r}; valid: {', '.join(SAMPLERS)}")
    if settings.objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {settings.objective!r}; valid: {', '.join(OBJECTIVES)}")
    resolve_recipe(settings.budget, settings.recipe)
    for name in ("trials", "seeds", "max_gmacs", "time_budget", "cpus_per_trial"):
        value = getattr(settings, name)
        if value is not None and not (isinstance(value, (int, float)) and value > 0 and math.isfinite(value)):
            raise ValueError(f"--{name.replace('_', '-')} must be a positive number, got {value!r}")
    if settings.gpus_per_trial is not None and not (0 <= settings.gpus_per_trial and math.isfinite(settings.gpus_per_trial)):
        raise ValueError(f"--gpus-per-trial must be 0 or more, got {settings.gpus_per_trial!r}")
    if sampler_of(settings) == "grid":
        spaces.grid_points(spaces.get_space(settings.space))  # a continuous space cannot be a grid
    elif settings.seeds != 1:
        raise ValueError(f"--seeds {settings.seeds} applies to grid designs; --sampler {sampler_of(settings)} trains each sampled configuration once")
    out = Path(settings.out)
    if settings.resume and not (out / SETTINGS_FILE).exists():
        raise ValueError(f"--resume: no experiment in {out} (it has no {SETTINGS_FILE})")
    return plugins


def sampler_of(settings: SearchSettings) -> str:
    if settings.sampler:
        return settings.sampler
    if settings.space in GRID_BY_DEFAULT:
        return "grid"
    try:
        spaces.grid_points(spaces.get_space(settings.space))
        return "grid"
    except spaces.GridError:
        return "tpe"


# ---------------------------------------------------------------------------------------------
# Optuna: the define-by-run space and the searcher that records pruning honestly


class SpaceSampler:
    """The define-by-run function handed to OptunaSearch: a picklable top-level class (a closure
    would kill ``fit()``) that calls the registered space, then adds the seed.

    Baseline trials are enqueued with ``user_attrs={"baseline": model}``: they train that model
    with the same recipe and seeds instead of calling the space.
    """

    def __init__(self, space: str, seeds: int) -> None:
        self.space, self.seeds = space, seeds

    def __call__(self, trial: Any) -> dict[str, Any]:
        seed = trial.suggest_categorical("seed", list(range(self.seeds)))
        baseline = trial.user_attrs.get("baseline")
        if baseline:
            return {"model": baseline, "seed": seed}
        config = spaces.get_space(self.space)(trial) or {}
        return {**config, "seed": seed}


class PruningAwareOptunaSearch(OptunaSearch):
    """OptunaSearch that tells Optuna the truth: a trial stopped early by ASHA (or rejected by the
    MACs ceiling) is PRUNED, a diverged one FAIL; Ray alone would report both as COMPLETE."""

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        config = super().suggest(trial_id)
        if trial_id in self._ot_trials:
            self._ot_trials[trial_id].set_user_attr("ray_trial_id", trial_id)
        return config

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        value = result.get("val_accuracy")
        if not (isinstance(value, (int, float)) and math.isfinite(value)):
            return
        try:
            super().on_trial_result(trial_id, result)
        except optuna.exceptions.UpdateFinishedTrialError:
            # A trial that finished after Ray's last state save is rerun on --resume (it returns
            # at once from its summary); Optuna already holds its outcome.
            pass

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        status = (result or {}).get("status")
        if trial_id in self._ot_trials and trial_id not in self._completed_trials and status in ("pruned", "running", "diverged"):
            state = optuna.trial.TrialState.FAIL if status == "diverged" else optuna.trial.TrialState.PRUNED
            try:
                self._ot_study.tell(self._ot_trials[trial_id], state=state)
            except optuna.exceptions.UpdateFinishedTrialError:
                pass  # told before a driver restart
            self._completed_trials.add(trial_id)
            return
        super().on_trial_complete(trial_id, result=result, error=error)


def study_storage(out: Path) -> optuna.storages.BaseStorage:
    """The study's journal file: ``optuna-dashboard OUT/optuna.journal`` opens it."""
    return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(out / STUDY_FILE)))


def create_study(out: Path, settings: SearchSettings) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = study_storage(out)
    directions = ["maximize", "minimize"] if settings.objective == "pareto" else ["maximize"]
    study = optuna.create_study(storage=storage, study_name=settings.space, directions=directions, load_if_exists=True)
    study.set_user_attr("budget", settings.budget)
    return study


def make_sampler(kind: str, objective: str) -> optuna.samplers.BaseSampler:
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=SAMPLER_SEED)
    if objective == "pareto":
        return optuna.samplers.NSGAIISampler(seed=SAMPLER_SEED)
    # Grid trials are all enqueued; the sampler only ever proposes in tpe mode.
    return optuna.samplers.TPESampler(seed=SAMPLER_SEED)


def planned_points(settings: SearchSettings) -> tuple[list[tuple[dict[str, Any], dict[str, Any]]], int, list[str]]:
    """(params, user_attrs) to enqueue, the number of trials to run, and notes for the plan."""
    notes: list[str] = []
    points: list[tuple[dict[str, Any], dict[str, Any]]] = []
    function = spaces.get_space(settings.space)
    kind = sampler_of(settings)
    if kind == "grid":
        configs = spaces.enumerate_space(function)
        if settings.max_gmacs is not None:
            kept = [c for c in configs if gmacs_of(spaces.strip_internal(c)) <= settings.max_gmacs]
            if len(kept) < len(configs):
                notes.append(f"--max-gmacs {settings.max_gmacs}: {len(configs) - len(kept)} of {len(configs)} configurations over the ceiling, not trained")
            configs = kept
        for config in configs:
            for seed in range(settings.seeds):
                points.append(({**config["__params__"], "seed": seed}, {}))
        if settings.trials is not None and settings.trials < len(points):
            notes.append(f"--trials {settings.trials} caps the grid of {len(points)} trials (grid order: the first ones run)")
            points = points[: settings.trials]
    baseline = spaces.BASELINES.get("cifar") if settings.baselines and settings.space != "vgg" else None
    if baseline:
        points += [({"seed": seed}, {"baseline": baseline}) for seed in range(settings.seeds)]
        notes.append(f"baseline: {baseline} x {settings.seeds} seed(s), same data and recipe (--no-baselines to skip)")
    total = len(points) if kind == "grid" else len(points) + (settings.trials or 10)
    return points, total, notes


def gmacs_of(config: dict[str, Any]) -> float:
    model, overrides, _ = spaces.split_config(config)
    return zoo.complexity(model, **overrides).gmacs


# ---------------------------------------------------------------------------------------------
# The trial


@dataclass(frozen=True)
class TrialContext:
    """What every trial of one search shares (sent once through Ray's object store)."""

    experiment: str
    space: str
    data: str
    budget: str
    recipe: dict[str, Any]
    plugins: list[Plugin]
    threads: int
    device: str
    max_gmacs: float | None
    data_seed: int
    environment: dict[str, str]  # the driver's RESBENCH_* settings (data cache, test switches)


def forwarded_environment() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if key.startswith("RESBENCH_")}


def run_trial(config: dict[str, Any], context: TrialContext) -> None:
    """One Ray trial: train (or resume) a configuration, reporting every epoch with its checkpoint."""
    # Worker processes outlive searches: drop settings of earlier drivers, take this one's.
    for key in [k for k in os.environ if k.startswith("RESBENCH_")]:
        del os.environ[key]
    os.environ.update(context.environment)
    load_plugins(context.plugins)  # blocks registered by plugins exist only where imported
    trial_id = tune.get_context().get_trial_id()
    where = {"trial_id": trial_id, "node": ray.get_runtime_context().get_node_id(), "gpu_ids": ",".join(map(str, ray.get_gpu_ids()))}
    wait_at_barrier(trial_id, json.dumps(where))
    model, model_overrides, recipe_overrides = spaces.split_config(config)
    out = Path(context.experiment) / "trials" / trial_id
    trial = TrialConfig(
        model=model,
        data=context.data,
        budget=context.budget,
        model_overrides=model_overrides,
        recipe_overrides={**context.recipe, **recipe_overrides},
        seed=int(config.get("seed", 0)),
        data_seed=context.data_seed,
        threads=context.threads,
        device=context.device,
    )
    epochs = trial.recipe().epochs
    where["command"] = trial.command(out)
    if context.max_gmacs is not None:
        gmacs = gmacs_of(config)
        if gmacs > context.max_gmacs:
            # Every result must carry the metric Ray and ASHA watch: NaN, which no one ranks.
            tune.report({**where, "status": "pruned", "epoch": 0, "epochs_planned": epochs, "val_accuracy": float("nan"), "macs": gmacs * 1e9, "reason": f"{gmacs:.3f} GMACs over --max-gmacs {context.max_gmacs}"})
            return
    restored = tune.get_checkpoint()
    if restored is not None:  # a retry or a restored experiment: continue from Ray's checkpoint
        with restored.as_directory() as directory:
            target = out / "checkpoint"
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy2(Path(directory) / "checkpoint.pt", target / "checkpoint.pt")

    def report(row: dict[str, Any], checkpoint_dir: Path) -> None:
        metrics = {**where, **row, "epochs_planned": epochs, "status": "running"}
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(str(checkpoint_dir)))

    summary = train(trial, out, report=report, log=None)
    final = {k: v for k, v in summary.items() if not isinstance(v, (dict, list))}
    final.update(where)
    final.update({
        "epoch": summary["epochs"],
        "epochs_planned": epochs,
        "recipe": json.dumps(summary["recipe"], sort_keys=True),
        "splits": json.dumps(summary["splits"], sort_keys=True),
        "architecture": json.dumps(summary["architecture"], sort_keys=True),
        "out": str(out),
    })
    if final.get("val_accuracy") is None:  # diverged in its first epoch
        final["val_accuracy"] = float("nan")
    tune.report(final)


# ---------------------------------------------------------------------------------------------
# Ray: connect, size the trials, check storage


def connect(address: str | None, plugins: list[Plugin]) -> bool:
    """Join ``address`` (or RAY_ADDRESS), else start a local instance on loopback only.

    Returns whether this call started Ray (and so should shut it down).
    """
    if ray.is_initialized():
        return False
    runtime_env = {"py_modules": [plugin.path for plugin in plugins]} if plugins else None
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        check_reachable(address)
        try:
            ray.init(address=address, log_to_driver=False, include_dashboard=False, runtime_env=runtime_env)
        except Exception as error:  # ConnectionError, TimeoutError, ValueError from ray.init
            raise ValueError(f"cannot reach a Ray cluster at --address {address}: {str(error).splitlines()[0][:160]}") from None
        return True
    # Before Ray starts: bind the local instance to 127.0.0.1 instead of every interface.
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(include_dashboard=False, log_to_driver=False, object_store_memory=100 * 1024 * 1024, runtime_env=runtime_env)
    return True


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """ray.init retries an unreachable GCS for minutes; a plain TCP connect answers in seconds."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return  # "auto" and other forms Ray resolves itself
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as error:
        raise ValueError(f"cannot reach a Ray cluster at --address {address}: {error.strerror or error}") from None


def trial_resources(settings: SearchSettings) -> tuple[float, float, int]:
    """(cpus per trial, gpus per trial, trials at once) for the cluster Ray sees."""
    cluster = ray.cluster_resources()
    cpus, gpus = float(cluster.get("CPU", 1)), float(cluster.get("GPU", 0))
    gpus_per_trial = settings.gpus_per_trial if settings.gpus_per_trial is not None else (1.0 if gpus >= 1 else 0.0)
    if gpus_per_trial > gpus:
        raise ValueError(f"--gpus-per-trial {gpus_per_trial} but the cluster has {gpus:g} GPU(s)")
    cpus_per_trial = settings.cpus_per_trial or 1.0
    if cpus_per_trial > cpus:
        raise ValueError(f"--cpus-per-trial {cpus_per_trial:g} but the cluster has {cpus:g} CPU(s)")
    at_once = int(cpus // cpus_per_trial)
    if gpus_per_trial > 0:
        at_once = min(at_once, int(round(gpus / gpus_per_trial, 6)))
    return cpus_per_trial, gpus_per_trial, max(1, at_once)


@ray.remote(num_cpus=0)
def _probe_storage(path: str, token: str) -> bool:
    try:
        return Path(path).read_text() == token
    except OSError:
        return False


def check_shared_storage(out: Path) -> None:
    """Every node must see the experiment directory (trial outputs and checkpoints live there)."""
    nodes = [node for node in ray.nodes() if node["Alive"]]
    if len(nodes) < 2:
        return
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    probe = out / ".storage-probe"
    token = f"{os.getpid()}-{time.time()}"
    probe.write_text(token)
    try:
        for node in nodes:
            strategy = NodeAffinitySchedulingStrategy(node_id=node["NodeID"], soft=False)
            if not ray.get(_probe_storage.options(scheduling_strategy=strategy).remote(str(probe), token)):
                raise ValueError(
                    f"the experiment directory {out} is not visible from node {node['NodeID'][:12]} "
                    f"({node['NodeManagerAddress']}): a multi-node search needs storage every node shares (e.g. NFS)"
                )
    finally:
        probe.unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------
# Progress


def error_message(error_file: str | None) -> str:
    """The last line of a trial's traceback (the exception itself), from Ray's error file."""
    try:
        lines = [line for line in Path(error_file or "").read_text().splitlines() if line.strip()]
    except OSError:
        return "the trial raised an error"
    return lines[-1].strip() if lines else "the trial raised an error"


class Progress(tune.Callback):
    """One short line per trial event, and results.csv rewritten as each trial ends.

    ``Tuner.restore`` brings back the callbacks pickled with the first run, so all state is
    (re)loaded in ``setup``, which Ray calls at the start of every ``fit``.
    """

    def __init__(self, out: Path, space: str, total: int) -> None:
        self.out, self.space, self.total = out, space, total

    def setup(self, **info: Any) -> None:
        self.started = time.time()
        self.finished: dict[str, dict[str, Any]] = {row["trial_id"]: row for row in read_results(self.out)}
        self.resumed = bool(self.finished)  # rows from an earlier driver of this experiment
        self.running: set[str] = set()

    def _line(self, text: str) -> None:
        counts = pd.Series([row["status"] for row in self.finished.values()]).value_counts().to_dict()
        done = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "none"
        best = max((r for r in self.finished.values() if r["status"] == "completed"), key=lambda r: r["val_accuracy"] or 0, default=None)
        best_text = f"best val {best['val_accuracy']:.4f} ({best['trial_id']})" if best else "best -"
        print(f"[{time.time() - self.started:7.0f}s] {len(self.finished)}/{self.total} done ({done}), {len(self.running)} running, {best_text} | {text}", flush=True)

    def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self.running.add(trial.trial_id)

    def _finish(self, trial: Any, error: str | None) -> None:
        self.running.discard(trial.trial_id)
        row = result_row(self.space, trial.trial_id, trial.config, trial.last_result or {}, error)
        self.finished[trial.trial_id] = row
        write_results(self.out, list(self.finished.values()))
        label = " ".join(f"{k}={v}" for k, v in trial.config.items() if k != "seed")
        accuracy = f" val {row['val_accuracy']:.4f}" if row["val_accuracy"] is not None else ""
        self._line(f"{trial.trial_id} {row['status']}{accuracy}: {label} seed={trial.config.get('seed')}")
        exit_after = fault("exit_driver_after_trials")
        if exit_after is not None and not self.resumed and len(self.finished) >= exit_after:
            os._exit(3)

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._finish(trial, None)

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._finish(trial, error_message(getattr(trial, "error_file", None)))


# ---------------------------------------------------------------------------------------------
# The search


def estimate_minutes(settings: SearchSettings, points: list[tuple[dict[str, Any], dict[str, Any]]], total: int, at_once: int, threads: int, gpus_per_trial: float) -> str:
    """Wall-time estimate from each planned trial's MACs, the epochs and a throughput measured here, now."""
    import torch

    if gpus_per_trial > 0 and not torch.cuda.is_available():
        return "unknown (trials run on GPUs this driver cannot measure)"
    from search.train import calibrate_macs_per_second

    recipe = resolve_recipe(settings.budget, settings.recipe)
    device = torch.device("cuda" if gpus_per_trial > 0 else "cpu")
    rate = calibrate_macs_per_second(device, resolve_precision(recipe.precision, device), threads)
    macs = [planned_macs(settings, params, attrs) for params, attrs in points]
    sampled = total - len(points)  # tpe/random trials are not known yet: priced as the space's first configuration
    if sampled:
        macs += [gmacs_of(spaces.all_configs(spaces.get_space(settings.space))[0]) * 1e9] * sampled
    images = recipe.epochs * (recipe.train_subset or 40000)
    seconds = sum(m * images / rate * 1.1 + 5 for m in macs) / at_once
    return f"~{seconds / 60:.0f} min ({rate / 1e9:.1f} training GMACs/s per trial measured here, {images:,} training images per trial)"


def planned_macs(settings: SearchSettings, params: dict[str, Any], attrs: dict[str, Any]) -> float:
    if "baseline" in attrs:
        return float(zoo.complexity(attrs["baseline"]).macs)
    for config in spaces.enumerate_space(spaces.get_space(settings.space)):
        if all(config["__params__"].get(k) == v for k, v in params.items() if k != "seed"):
            return gmacs_of(spaces.strip_internal(config)) * 1e9
    return float(zoo.complexity("resnet20").macs)


def versions() -> dict[str, str]:
    import timm
    import torch

    return {"torch": torch.__version__, "ray": ray.__version__, "optuna": optuna.__version__, "timm": timm.__version__}


def search_command(settings: SearchSettings) -> str:
    """The ``search.run`` command line that reproduces a search."""
    words = ["python", "-m", "search.run", "--space", settings.space, "--data", settings.data, "--budget", settings.budget]
    if settings.recipe:
        words += ["--recipe", *(f"{k}={v}" for k, v in sorted(settings.recipe.items()))]
    words += ["--sampler", str(settings.sampler), "--seeds", str(settings.seeds)]
    for name in ("trials", "max_gmacs", "time_budget", "cpus_per_trial", "gpus_per_trial"):
        if getattr(settings, name) is not None:
            words += [f"--{name.replace('_', '-')}", str(getattr(settings, name))]
    if settings.objective != "accuracy":
        words += ["--objective", settings.objective]
    if settings.plugins:
        words += ["--plugins", ",".join(settings.plugins)]
    if not settings.baselines:
        words.append("--no-baselines")
    words += ["--out", settings.out]
    return shlex.join(words)


def trial_dirname(trial: Any) -> str:
    return str(trial.trial_id)


def requeue_abandoned_trials(out: Path, settings: SearchSettings, ray_dir: Path | None) -> None:
    """A driver killed between Optuna's ask and Ray's next state save leaves Optuna trials that
    the restored experiment never heard of. Mark them FAIL (the only FAIL trials without a results
    row) and enqueue their parameters again, so a grid stays complete."""
    known = {trial.trial_id for trial in tune.ExperimentAnalysis(str(ray_dir)).trials} if ray_dir else set()
    study = create_study(out, settings)
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        if trial.user_attrs.get("ray_trial_id") not in known:
            study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
            attrs = {k: v for k, v in trial.user_attrs.items() if k == "baseline"}
            study.enqueue_trial(trial.params, user_attrs=attrs)


def run_search(space: str, **options: Any) -> pd.DataFrame:
    """Run (or resume) a search and return its results table, one row per trial."""
    settings = SearchSettings(space=space, **options)
    plugins = validate(settings)
    out = Path(settings.out).resolve()
    settings_path = out / SETTINGS_FILE
    resuming = settings_path.exists()
    if resuming:
        stored = json.loads(settings_path.read_text())
        for key in ("space", "data", "budget", "recipe", "sampler", "seeds", "objective", "baselines"):
            if stored.get(key) != asdict(settings).get(key) and not (key == "sampler" and settings.sampler is None):
                raise ValueError(f"{out} holds a search with {key}={stored.get(key)!r}, not {asdict(settings).get(key)!r}; use another --out")
        settings.sampler = stored["sampler"]
    settings.sampler = sampler_of(settings)
    points, total, notes = planned_points(settings)
    dataset = load_dataset(settings.data, data_seed=settings.data_seed)  # fail fast; warms caches for trials
    started_ray = connect(settings.address, plugins)
    try:
        cpus_per_trial, gpus_per_trial, at_once = trial_resources(settings)
        threads = max(1, int(cpus_per_trial))
        out.mkdir(parents=True, exist_ok=True)
        check_shared_storage(out)
        recipe = resolve_recipe(settings.budget, settings.recipe)
        print(f"search {settings.space}: {total} trials ({settings.sampler}, {settings.seeds} seed(s)), budget {settings.budget} ({recipe.epochs} epochs), data {dataset.name} {dataset.sizes()}", flush=True)
        print(f"  resources: {cpus_per_trial:g} CPU + {gpus_per_trial:g} GPU per trial, {at_once} at once on {hardware_name(__import__('torch').device('cpu'))}", flush=True)
        for note in notes:
            print(f"  {note}", flush=True)
        print(f"  estimate: {estimate_minutes(settings, points, total, at_once, threads, gpus_per_trial)}", flush=True)
        if not resuming:
            study = create_study(out, settings)
            for params, attrs in points:
                study.enqueue_trial(params, user_attrs=attrs)
            record = {**asdict(settings), "versions": versions(), "started_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "command": search_command(settings)}
            settings_path.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
        results = _fit(settings, plugins, out, total, at_once, cpus_per_trial, gpus_per_trial, threads, resuming)
    finally:
        if started_ray:
            ray.shutdown()
    return results


def _fit(settings: SearchSettings, plugins: list[Plugin], out: Path, total: int, at_once: int, cpus_per_trial: float, gpus_per_trial: float, threads: int, resuming: bool) -> pd.DataFrame:
    context = TrialContext(
        # Trials run with their working directory changed: a data folder travels as an absolute path.
        experiment=str(out), space=settings.space, data=describe_source(settings.data), budget=settings.budget, recipe=dict(settings.recipe),
        plugins=plugins, threads=threads, device="cuda" if gpus_per_trial > 0 else "cpu",
        max_gmacs=settings.max_gmacs, data_seed=settings.data_seed, environment=forwarded_environment(),
    )
    trainable = tune.with_resources(tune.with_parameters(run_trial, context=context), {"cpu": cpus_per_trial, "gpu": gpus_per_trial})
    progress = Progress(out, settings.space, total)
    run_config = tune.RunConfig(
        name="ray",
        storage_path=str(out),
        verbose=0,
        callbacks=[progress],
        failure_config=tune.FailureConfig(max_failures=2),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
    )
    ray_dir = out / "ray"
    restorable = resuming and tune.Tuner.can_restore(str(ray_dir))
    if resuming:
        requeue_abandoned_trials(out, settings, ray_dir if restorable else None)
    if restorable:
        tuner = tune.Tuner.restore(str(ray_dir), trainable=trainable, resume_unfinished=True, resume_errored=True)
    else:
        pareto = settings.objective == "pareto"
        study = create_study(out, settings)
        searcher = PruningAwareOptunaSearch(
            space=SpaceSampler(settings.space, settings.seeds),
            metric=["val_accuracy", "macs"] if pareto else "val_accuracy",
            mode=["max", "min"] if pareto else "max",
            sampler=make_sampler(settings.sampler or "tpe", settings.objective),
            study_name=study.study_name,
            storage=study_storage(out),
        )
        epochs = resolve_recipe(settings.budget, settings.recipe).epochs
        early_stopping = settings.sampler != "grid" and not pareto
        # max_t one past the last epoch: ASHA stops any trial that reaches max_t, which would cut
        # a finished trial off before its final report (test accuracy, summary) arrives.
        scheduler = ASHAScheduler(time_attr="epoch", metric="val_accuracy", mode="max", max_t=epochs + 1, grace_period=max(1, epochs // 4), reduction_factor=3) if early_stopping else None
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(
                search_alg=searcher,
                scheduler=scheduler,
                num_samples=total,
                max_concurrent_trials=at_once,
                time_budget_s=settings.time_budget,
                trial_dirname_creator=trial_dirname,
            ),
            run_config=run_config,
        )
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # with verbose=0: no tables, our Progress lines only
    # Short smoke trials checkpoint every few seconds; Ray's "snapshotting too often" advice is noise here.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    grid = tuner.fit()
    rows = {row["trial_id"]: row for row in read_results(out)}  # every driver's finished trials
    for result in grid:  # any trial the callback did not see end (e.g. restored as already done)
        trial_id = result.metrics.get("trial_id")
        if trial_id and trial_id not in rows:
            rows[trial_id] = result_row(settings.space, trial_id, result.config, result.metrics, str(result.error) if result.error else None)
    write_results(out, list(rows.values()))
    return results_frame(list(rows.values()))
