"""The Optuna side of a search: the study in the experiment directory, its sampler, the
define-by-run space Ray's OptunaSearch calls, and the repair of trials a killed driver abandoned.

Seeds and baseline markers are user attributes of a trial, not sampled parameters, so the
study's parameters (and optuna-dashboard's importance plots) are the architecture choices only.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import optuna

from search import spaces
from search.plan import Plan

STUDY_FILE = "optuna.journal"
SAMPLER_SEED = 0  # the same seed gives the same sampled configurations


def study_storage(out: Path) -> optuna.storages.BaseStorage:
    """The study's journal file: ``optuna-dashboard OUT/optuna.journal`` opens it."""
    return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(out / STUDY_FILE)))


OBJECTIVE_NAMES = ["val_accuracy", "macs"]


def open_study(out: Path, space: str, objective: str, budget: str) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    directions = ["maximize", "minimize"] if objective == "pareto" else ["maximize"]
    study = optuna.create_study(storage=study_storage(out), study_name=space, directions=directions, load_if_exists=True)
    # Named, so optuna-dashboard and study.trials_dataframe() say what each objective is. (Marked
    # experimental since Optuna 3.2 and unchanged since; the warning would print in every trial.)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(OBJECTIVE_NAMES[: len(directions)])
    refuse_seed_parameters(study, out)
    study.set_user_attr("budget", budget)
    return study


def refuse_seed_parameters(study: optuna.Study, out: Path) -> None:
    """Studies written before seeds became user attributes sampled ``seed`` as a parameter: their
    trials cannot be paired with this version's, so such an experiment is refused, not mixed."""
    if any("seed" in trial.params for trial in study.get_trials(deepcopy=False)):
        raise ValueError(f"{out / STUDY_FILE} was written by an older ResBench (seed as a sampled parameter); start this search in a new --out")


def enqueue(study: optuna.Study, plan: Plan) -> None:
    for trial in plan.trials:
        study.enqueue_trial(trial.params, user_attrs=trial.user_attrs())


def make_sampler(kind: str, objective: str) -> optuna.samplers.BaseSampler:
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=SAMPLER_SEED)
    if objective == "pareto":
        return optuna.samplers.NSGAIISampler(seed=SAMPLER_SEED)
    # Grid trials are all enqueued; the sampler only ever proposes in tpe mode.
    return optuna.samplers.TPESampler(seed=SAMPLER_SEED)


class SpaceSampler:
    """The define-by-run function handed to OptunaSearch: a picklable top-level class (a closure
    would kill ``fit()``) that calls the registered space and adds the seed.

    An enqueued trial carries its seed (and, for a baseline, the model to train with the same
    recipe instead of calling the space) in its user attributes; a sampled one trains seed 0.
    """

    def __init__(self, space: str) -> None:
        self.space = space

    def __call__(self, trial: Any) -> dict[str, Any]:
        seed = trial.user_attrs.get("seed")
        if seed is None:
            seed = 0
            trial.set_user_attr("seed", seed)
        baseline = trial.user_attrs.get("baseline")
        if baseline:
            return {"model": baseline, "seed": seed}
        config = spaces.get_space(self.space)(trial) or {}
        return {**config, "seed": seed}


# A results row's status as an Optuna state (results.csv and the study agree on every trial).
STATE_OF_STATUS = {
    "completed": optuna.trial.TrialState.COMPLETE,
    "pruned": optuna.trial.TrialState.PRUNED,
    "diverged": optuna.trial.TrialState.FAIL,
    "failed": optuna.trial.TrialState.FAIL,
}


def row_outcome(row: dict[str, Any], objective: str) -> tuple[optuna.trial.TrialState, list[Any] | None]:
    """The Optuna state and values that a results row stands for; a completed row without its
    metric ranks nowhere, so it counts as FAIL."""
    state = STATE_OF_STATUS.get(row["status"], optuna.trial.TrialState.FAIL)
    values = [row["val_accuracy"], row["macs"]] if objective == "pareto" else [row["val_accuracy"]]
    if state != optuna.trial.TrialState.COMPLETE:
        return state, None
    if any(v is None for v in values):
        return optuna.trial.TrialState.FAIL, None
    return state, values


def settle_abandoned(study: optuna.Study, known_ray_trials: set[str], rows: dict[str, dict[str, Any]], objective: str) -> list[str]:
    """Optuna trials a killed driver left RUNNING, settled before its experiment resumes.

    One that ended with a results row (the driver died before Optuna heard) is told the row's
    outcome. One the restored Ray experiment never heard of (killed between Optuna's ask and
    Ray's next state save) is marked FAIL, the only FAIL trials without a row, and its parameters
    and attributes are enqueued again, so a grid stays complete. Returns the Ray ids of those
    abandoned: their directories hold work nothing refers to."""
    abandoned = []
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        ray_id = trial.user_attrs.get("ray_trial_id")
        row = rows.get(ray_id) if ray_id else None
        if row is not None:
            state, values = row_outcome(row, objective)
            study.tell(trial.number, values=values, state=state)
        elif ray_id not in known_ray_trials:
            study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
            attrs = {k: v for k, v in trial.user_attrs.items() if k in ("seed", "baseline")}
            study.enqueue_trial(trial.params, user_attrs=attrs)
            if ray_id:
                abandoned.append(ray_id)
    return abandoned
