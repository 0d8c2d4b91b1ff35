"""A grid search without Ray: plan it as plain ``search.train`` commands, run them under any
launcher (``--run-planned``, ``xargs -P``, a Slurm array), and collect what they wrote.

    python -m search.run --space shortcuts [flags] --plan        # writes the experiment, prints commands
    python -m search.run --run-planned experiments/shortcuts --jobs 4 [--gpus 0,1]
    python -m search.run --collect experiments/shortcuts         # results.csv and the page

Each planned trial is the command a Ray trial of the same search would run (same identity, so
the same result), with its own ``--out`` under the experiment. Paths are relative to the folder
the plan was made in (its root): copy the repository, the experiment and the data folder to
another machine, and the commands run there from the same root. Collecting needs neither Ray nor
Optuna; where Optuna is importable it also brings the experiment's study up to date.
"""

from __future__ import annotations

import io
import json
import math
import os
import shlex
import signal
import subprocess
import sys
import tarfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

import zoo
from search import spaces
from search.checkpoint import checkpoint_path
from search.config import TrialConfig, split_config
from search.data import asked_carves, check_without_loading
from search.distributed import World
from search.lease import Lease
from search.plan import make_plan
from search.provenance import record, resolve_search_precision
from search.recipes import resolve_recipe
from search.results import result_row, results_frame, summary_report, write_results
from search.settings import (
    SETTINGS_FILE,
    SearchSettings,
    continue_experiment,
    read_settings,
    search_recipe,
    trial_workers,
    validate,
)
from search.train import EXIT_INTERRUPTED, FINISHED, available_cpus, check_world, read_summary
from zoo.files import read_json
from zoo.plugins import import_plugins

PLAN_FILE = "plan.json"
LOG_FILE = "train.log"  # each planned trial's output, beside its summary


@dataclass(frozen=True)
class PlannedCommand:
    trial_id: str
    config: dict[str, Any]  # the flat configuration a Ray trial of this search would get
    command: str  # run from the plan's root

    @property
    def workers(self) -> int:
        """The data-parallel processes the command launches: torchrun's --nproc-per-node, else 1."""
        words = shlex.split(self.command)
        return next((int(w.split("=", 1)[1]) for w in words if w.startswith("--nproc-per-node=")), 1) if words[0] == "torchrun" else 1

    def words(self, threads: int | None = None) -> list[str]:
        """The command as arguments for ``sys.executable`` (``torchrun`` is its module,
        torch.distributed.run), with this machine's thread count for each process."""
        command = shlex.split(self.command)
        # "python" is whichever Python runs the plan; so is torchrun's, not one found on PATH
        words = (["-m", "torch.distributed.run"] if command[0] == "torchrun" else []) + command[1:]
        if threads is not None:
            words[words.index("--threads") + 1] = str(threads)
        return words

    def out(self, root: Path) -> Path:
        words = shlex.split(self.command)
        # Normalised: an experiment planned outside the root names itself through "..", and a
        # message should show /tmp/c/trials/..., not /work/main/../../tmp/c/trials/...
        return Path(os.path.normpath(root / words[words.index("--out") + 1]))


@dataclass
class PlannedExperiment:
    out: Path
    space: str
    root: Path  # where the commands run from
    trials: list[PlannedCommand]

    @classmethod
    def load(cls, out: str | Path) -> PlannedExperiment:
        out = Path(out).resolve()
        path = out / PLAN_FILE
        if not path.exists():
            raise ValueError(f"{out} holds no planned experiment (no {PLAN_FILE}); make one with search.run --space SPACE --plan --out {out}")
        stored = read_json(path, f"a plan ({PLAN_FILE}, written by search.run --plan)")
        return cls(out, stored["space"], (out / stored["root"]).resolve(), [PlannedCommand(**t) for t in stored["trials"]])


def grid_configs(space: str) -> dict[tuple[tuple[str, Any], ...], dict[str, Any]]:
    """Each grid point's suggested parameters -> the flat configuration it trains."""
    return {tuple(sorted(c["__params__"].items())): spaces.strip_internal(c) for c in spaces.enumerate_space(spaces.get_space(space))}


def plan_experiment(space: str, **options: Any) -> PlannedExperiment:
    """Write the experiment directory (settings, study, plan) of a grid search and return its
    commands. Nothing trains; Ray is not started."""
    settings = SearchSettings(space=space, **options)
    validate(settings)  # imports --plugins here: each planned command imports them again (search.train --plugins)
    workers = trial_workers(settings.workers_per_trial, settings.gpus_per_trial)  # >1: each command a torchrun of that many
    out = Path(settings.out).resolve()
    Lease(out, "search driver").refuse_if_held()  # a search, runner or collect at work there
    if (out / SETTINGS_FILE).exists() and not (out / PLAN_FILE).exists():
        raise ValueError(f"{out} holds a search run by Ray; plan into another --out")
    continue_experiment(settings, out)
    plan = make_plan(settings)
    if plan.sampler != "grid":
        raise ValueError(f"--plan needs a grid design; {space} is sampled here ({plan.sampler}: {plan.why}), which only a Ray search can do")
    settings.sampler = plan.sampler
    recipe = search_recipe(settings)
    check_without_loading(settings.data, val_size=recipe.val_size, test_size=recipe.test_size, exact_sizes=asked_carves(settings.recipe))
    on_gpu = bool(settings.gpus_per_trial)
    check_world(recipe, World(0, workers), torch.device("cuda" if on_gpu else "cpu"))  # as each command's ranks would, before anything is written
    precision = resolve_search_precision(recipe.precision, on_gpu)
    root = Path.cwd()
    configs = grid_configs(space)
    commands = []
    for index, trial in enumerate(plan.trials):
        config = {"model": trial.baseline} if trial.baseline else dict(configs[tuple(sorted(trial.params.items()))])
        config["seed"] = trial.seed
        model, model_overrides, recipe_overrides = split_config(config)
        trial_config = TrialConfig(
            model=model, data=settings.data, budget=settings.budget, model_overrides=model_overrides,
            recipe_overrides={**settings.recipe, "precision": precision, **recipe_overrides}, seed=trial.seed,
            data_seed=settings.data_seed, threads=max(1, int((settings.cpus_per_trial or workers) / workers)),  # each process's, as a Ray trial splits its CPUs
            device="cuda" if on_gpu else "cpu", compile=settings.compile, deterministic=settings.deterministic, decode=settings.decode, family=spaces.space_family(space),
            plugins=tuple(settings.plugins), workers=workers,
        )
        trial_id = f"trial_{index:04d}"
        commands.append(PlannedCommand(trial_id, config, trial_config.command(os.path.relpath(out / "trials" / trial_id, root))))
    out.mkdir(parents=True, exist_ok=True)
    provenance = record(torch.device("cpu"), precision)
    settings_record = {**asdict(settings), **provenance, "started_at": provenance["recorded_at"], "command": settings.command() + " --plan", "launcher": "plan"}
    zoo.write_atomically(out / SETTINGS_FILE, json.dumps(settings_record, indent=2, sort_keys=True) + "\n")
    stored = {"space": space, "root": os.path.relpath(root, out), "trials": [asdict(c) for c in commands]}
    zoo.write_atomically(out / PLAN_FILE, json.dumps(stored, indent=2) + "\n")
    update_study(out, space, settings.objective, settings.budget, [])
    return PlannedExperiment(out, space, root, commands)


def plan_unless_planned(space: str, **options: Any) -> PlannedExperiment | None:
    """Plan the grid into ``options["out"]`` unless that folder holds its plan already; a folder
    holding another search (a dry run's, say) is refused with a ValueError naming the difference.
    Returns the new plan, or None when it was planned before (its search.json is left as it was)."""
    out = Path(options["out"]).resolve()
    if (out / PLAN_FILE).exists():
        continue_experiment(SearchSettings(space=space, **options), out)
        return None
    return plan_experiment(space, **options)


# ---------------------------------------------------------------------------------------------
# Running the commands on this machine


def finished_summary(directory: Path) -> dict[str, Any] | None:
    """The summary of a completed or diverged run in ``directory``, else None."""
    try:
        summary = read_summary(directory)
    except ValueError:
        return None
    return summary if summary is not None and summary.get("status") in FINISHED else None


def visible_device_ids(gpus: list[str]) -> list[str]:
    """``--gpus`` indices, numbered as torch numbers this process's GPUs, as the
    CUDA_VISIBLE_DEVICES entry each command gets. Under a launcher that already narrowed
    CUDA_VISIBLE_DEVICES (a Slurm job given GPUs 2 and 3), index 0 is the job's first GPU, not
    the machine's: a child given the bare index would share a GPU with another job."""
    count = torch.cuda.device_count()
    for gpu in gpus:
        if not (gpu.isdigit() and int(gpu) < count):
            valid = f"0 to {count - 1}" if count else "none, no CUDA device is visible here (leave out --gpus to run on the CPU)"
            raise ValueError(f"--gpus {gpu}: not an index of this machine's GPUs; valid: {valid}")
    inherited = [entry.strip() for entry in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if entry.strip()]
    return [inherited[int(gpu)] if int(gpu) < len(inherited) else gpu for gpu in gpus]


def device_groups(gpus: list[str], workers: int) -> list[str]:
    """The CUDA_VISIBLE_DEVICES value of each command that may run at once: one GPU each, or for
    trials of several workers (one GPU each, NCCL cannot put two ranks on one device) disjoint
    groups of that many, in the order given."""
    if len(gpus) % workers:
        raise ValueError(f"--gpus {','.join(gpus)}: each planned trial trains on {workers} GPUs, one per worker; valid: a multiple of {workers} GPUs")
    return [",".join(gpus[start : start + workers]) for start in range(0, len(gpus), workers)]


def run_planned(out: str | Path, jobs: int, gpus: list[str] | None = None, time_budget: float | None = None, say: Any = print) -> int:
    """Run the unfinished planned trials, ``jobs`` at a time, each with its share of this
    machine's cores (and a GPU from ``gpus``, the least busy; a trial of several workers a group
    of as many, one per worker: ``device_groups``). Returns how many trials ended
    unfinished or failed; ``collect`` makes their results table.

    A trial starts only while its estimated time (the slowest finished run of the same model so
    far) fits what is left of ``time_budget``. SIGTERM or Ctrl-C stops launching and asks the
    running trials to checkpoint; the same command continues later."""
    experiment = PlannedExperiment.load(out)
    if jobs < 1:
        raise ValueError(f"--jobs must be positive, got {jobs}")
    if time_budget is not None and not time_budget > 0:
        raise ValueError(f"--time-budget must be a positive number, got {time_budget}")
    import_experiment_plugins(experiment, read_settings(experiment.out))  # one that cannot be imported would fail every command
    workers = max((trial.workers for trial in experiment.trials), default=1)
    devices = device_groups(visible_device_ids(gpus), workers) if gpus else None
    threads = max(1, available_cpus() // (jobs * workers))
    waiting = [t for t in experiment.trials if finished_summary(t.out(experiment.root)) is None]
    each = f"{workers} processes of {threads} thread(s) each" if workers > 1 else f"{threads} thread(s) each"
    say(f"{experiment.out.name}: {len(experiment.trials) - len(waiting)} of {len(experiment.trials)} planned trials finished; running {len(waiting)}, {jobs} at a time, {each}" + (f" on GPUs {' '.join(devices)}" if devices else ""))
    started = time.monotonic()
    seconds_by_model: dict[str, float] = {}
    running: dict[int, tuple[PlannedCommand, subprocess.Popen[bytes], float, str | None]] = {}
    stopping = signalled = False  # no more launches; the running trials were asked to stop

    def stop(signum: int, frame: Any) -> None:
        nonlocal stopping, signalled
        stopping = signalled = True
        for _, process, _, _ in running.values():
            process.send_signal(signal.SIGTERM)  # each trial checkpoints where it is

    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    problems = 0
    try:
        while waiting or running:
            for pid, (trial, process, began, gpu) in list(running.items()):
                if process.poll() is None:
                    continue
                del running[pid]
                seconds = time.monotonic() - began
                model = trial.config["model"]
                directory = trial.out(experiment.root)
                summary = finished_summary(directory)
                if summary is not None:
                    seconds_by_model[model] = max(seconds_by_model.get(model, 0.0), seconds)
                    state = str(summary["status"])
                else:
                    problems += 1
                    # torchrun passes the stop on to its workers, which checkpoint and exit 75,
                    # and then ends with its own exit 1 (a SignalException)
                    interrupted = process.returncode == EXIT_INTERRUPTED or (signalled and trial.workers > 1)
                    if not interrupted:
                        state = f"exit {process.returncode}: {unfinished_reason(directory)} ({directory / LOG_FILE})"
                    elif checkpoint_path(directory).exists():
                        state = "stopped with a checkpoint"
                    else:
                        state = "stopped before its first checkpoint"
                say(f"[{time.monotonic() - started:6.0f}s] {trial.trial_id} {model} seed {trial.config['seed']}: {state} ({seconds:.0f} s)")
            busy_gpus = [gpu for *_, gpu in running.values()]
            while waiting and len(running) < jobs and not stopping:
                trial = waiting[0]
                estimate = seconds_by_model.get(trial.config["model"], 0.0)
                if time_budget is not None and time.monotonic() - started + estimate > time_budget:
                    say(f"time budget: {trial.trial_id} ({trial.config['model']}, ~{estimate:.0f} s) would not finish in the {max(0.0, time_budget - (time.monotonic() - started)):.0f} s left; not launched")
                    stopping = True
                    break
                waiting.pop(0)
                gpu = min(devices, key=busy_gpus.count) if devices else None
                busy_gpus.append(gpu)
                directory = trial.out(experiment.root)
                directory.mkdir(parents=True, exist_ok=True)
                environment = {**os.environ, **({"CUDA_VISIBLE_DEVICES": gpu} if gpu is not None else {})}
                if trial.workers > 1:  # torchrun would set 1 for each process, with a banner saying so
                    environment.setdefault("OMP_NUM_THREADS", str(threads))
                with open(directory / LOG_FILE, "ab") as log:
                    process = subprocess.Popen([sys.executable, *trial.words(threads)], cwd=experiment.root, stdout=log, stderr=subprocess.STDOUT, env=environment)
                running[process.pid] = (trial, process, time.monotonic(), gpu)
            if stopping and not running:
                break
            time.sleep(0.2)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return len(waiting) + problems


# ---------------------------------------------------------------------------------------------
# Collecting what the commands wrote


def collect(out: str | Path) -> pd.DataFrame:
    """``results.csv`` from the planned trials' directories: one row per planned trial, built
    as a Ray search builds it from the same summary; trials without a finished summary are
    ``unfinished``. Updates the Optuna study where Optuna is importable."""
    experiment = PlannedExperiment.load(out)
    settings = read_settings(experiment.out)
    import_experiment_plugins(experiment, settings)
    epochs = resolve_recipe(settings["budget"], settings["recipe"], spaces.space_family(settings["space"])).epochs
    rows = []
    for trial in experiment.trials:
        directory = trial.out(experiment.root)
        where = {"trial_id": trial.trial_id, "command": trial.command}
        summary = finished_summary(directory)
        if summary is not None:
            metrics = summary_report(summary, where, epochs, directory)
        else:
            metrics = {**where, "status": "unfinished", "epoch": completed_epochs(directory), "epochs_planned": epochs, "reason": unfinished_reason(directory)}
        rows.append(result_row(experiment.space, trial.trial_id, trial.config, metrics, None))
    write_results(experiment.out, rows)
    update_study(experiment.out, experiment.space, settings["objective"], settings["budget"], rows)
    return results_frame(rows)


def import_experiment_plugins(experiment: PlannedExperiment, settings: dict[str, Any]) -> None:
    """The plan's --plugins (in its ``settings``), imported as its commands import them: from the
    plan's root, their current folder, wherever this process was started."""
    modules = settings.get("plugins") or []
    if modules and str(experiment.root) not in sys.path:
        sys.path.insert(0, str(experiment.root))
    import_plugins(modules)


def completed_epochs(directory: Path) -> int:
    metrics = directory / "metrics.csv"
    try:
        return len(pd.read_csv(metrics)) if metrics.exists() else 0
    except (OSError, ValueError, pd.errors.EmptyDataError):
        return 0


def unfinished_reason(directory: Path) -> str:
    if not directory.exists():
        return "not started"
    try:  # a summary that cannot be read stops every rerun until it is deleted: say so first
        read_summary(directory)
    except ValueError as error:
        return str(error)[:300]
    try:  # search.train's one-line refusal (bad input, a full disk), when it ended with one
        refusal = [line for line in (directory / LOG_FILE).read_text(errors="replace").splitlines() if line.startswith("error: ")]
    except OSError:
        refusal = []
    if refusal:
        return refusal[-1].removeprefix("error: ")[:300]
    epochs = completed_epochs(directory)
    return f"not finished: {epochs} epoch(s) checkpointed; run its command again to resume" if epochs else "not finished: started, no epoch checkpointed yet"


def update_study(out: Path, space: str, objective: str, budget: str, rows: list[dict[str, Any]]) -> None:
    """Bring the experiment's Optuna study up to date with the finished rows (one trial each,
    marked with ``planned_trial_id``), where Optuna is installed; a later collect on a machine
    with Optuna catches up with everything collected without it."""
    try:
        import optuna

        from search.study import STATE_OF_STATUS, open_study, row_outcome
    except ImportError:
        return
    if rows and all(row.get("val_source") == "none" for row in rows if row["status"] == "completed"):
        return  # trained without validation: nothing to tell a study that optimises validation accuracy
    study = open_study(out, space, objective, budget)
    recorded = {t.user_attrs.get("planned_trial_id") for t in study.get_trials(deepcopy=False)}
    function = spaces.get_space(space)
    configs = spaces.enumerate_space(function)
    suggested = set().union(*(c["__params__"] for c in configs))  # the space's parameter names
    space_models = {c["model"] for c in configs}
    for row in rows:
        if row["status"] not in STATE_OF_STATUS or row["trial_id"] in recorded:
            continue
        attrs = {"seed": row["seed"], "planned_trial_id": row["trial_id"]}
        fixed = optuna.trial.FixedTrial({})
        if row["model"] not in space_models:  # the baseline trained beside the space: no parameters
            attrs["baseline"] = row["model"]
        else:  # a suggested model is the row's model column (model is no config_ column)
            params = {name: row["model"] if name == "model" else row[f"config_{name}"] for name in suggested if name == "model" or row.get(f"config_{name}") is not None}
            fixed = optuna.trial.FixedTrial(params)
            function(fixed)  # records each parameter's distribution, as a Ray trial's would be
        state, values = row_outcome(row, objective)
        study.add_trial(optuna.trial.create_trial(state=state, params=fixed.params, distributions=fixed.distributions, values=values, user_attrs=attrs))


# ---------------------------------------------------------------------------------------------
# Bringing experiments back from a machine that returns a few files of limited size


def worth_bringing_back(path: Path, folder: Path) -> bool:
    """Tables, summaries, metrics, logs and ResNet weights; never checkpoints (an unfinished
    trial restarts) nor VGG weights (57 MB each: a baseline's accuracy is in its summary)."""
    if "checkpoint" in path.relative_to(folder).parts or path.name.endswith(".tmp"):
        return False  # (a .tmp file is a write in progress, renamed over its table any moment)
    if path.suffix == ".safetensors":
        summary = finished_summary(path.parent)
        return summary is not None and str(summary.get("model", "")).startswith("resnet")
    return True


REPOSITORY = Path(__file__).resolve().parents[1]


def place_in_repository(folder: Path, elsewhere: str) -> str:
    """A bundled folder's archive name: its path from the repository root, so that unpacking at
    the root puts it back where the campaign and ``publish`` look; ``elsewhere`` (a path from
    the root) for a folder outside the repository."""
    try:
        return folder.resolve().relative_to(REPOSITORY).as_posix()
    except ValueError:
        return elsewhere


def bundle(folders: dict[str, Path], into: Path, part_bytes: int = 15 * 2**20) -> list[Path]:
    """``folders`` (archive name -> folder) as ``bundle.tar.gz.partNN`` files of at most
    ``part_bytes`` in ``into``; ``cat bundle.tar.gz.part* | tar xz`` unpacks them by name.

    Bundling again replaces the bundle, so a run can bundle as it goes and a kill still brings
    back what had finished: every new part is written whole before any is renamed over an old
    one, and parts left from a larger bundle go. Files may change while they are packed (trials
    still running): one that vanishes between listing and packing is left out."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, folder in folders.items():
            for path in sorted(folder.rglob("*")) if folder.exists() else []:
                try:
                    if path.is_file() and worth_bringing_back(path, folder):
                        archive.add(path, arcname=str(Path(name) / path.relative_to(folder)))
                except FileNotFoundError:
                    continue
    data = buffer.getvalue()
    into.mkdir(parents=True, exist_ok=True)
    staged = []
    for index, start in enumerate(range(0, len(data), part_bytes)):
        temporary = into / f".bundle.tar.gz.part{index:02d}.tmp"  # outside the bundle.tar.gz.part* glob
        temporary.write_bytes(data[start : start + part_bytes])
        staged.append((temporary, into / f"bundle.tar.gz.part{index:02d}"))
    for temporary, part in staged:
        os.replace(temporary, part)
    parts = [part for _, part in staged]
    for stale in set(into.glob("bundle.tar.gz.part*")) - set(parts):
        stale.unlink()
    return parts


class Rebundler:
    """``bundle`` again as a run goes on, so a kill (a device's time limit) still brings back
    what finished: ``maybe()`` at most once every ``every`` seconds, ``now()`` at once."""

    def __init__(self, folders: dict[str, Path], into: Path, every: float = 60.0) -> None:
        self.folders, self.into, self.every = folders, into, every
        self.parts: list[Path] = []
        self.at = -math.inf

    def maybe(self) -> None:
        if time.monotonic() - self.at >= self.every:
            self.now()

    def now(self) -> list[Path]:
        self.parts, self.at = bundle(self.folders, self.into), time.monotonic()
        return self.parts
