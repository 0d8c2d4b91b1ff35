"""Where trials are launched: a Ray Tune ``Tuner`` driven by Optuna, with ASHA early stopping for
sampled designs, and a progress callback that rewrites ``results.csv`` as each trial ends.

Imports Ray: ``search.run`` imports this module only after ``search.cluster.connect``.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from ray import tune
from ray.tune.result import TRAINING_ITERATION
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch
from tqdm import tqdm

from search import spaces, stopping
from search.cluster import Resources
from search.data import describe_source
from search.lease import LEASE_FILE, read_holder
from search.plan import Plan
from search.results import SearchInterrupted, read_results, result_row, results_frame, write_results
from search.settings import SearchSettings, search_recipe
from search.study import STATE_OF_STATUS, SpaceSampler, make_sampler, open_study, settle_abandoned, study_storage
from search.testing import injected_faults
from search.trial import WORKERS_PLACEMENT_GROUP, TrialContext, forwarded_environment, run_trial
from zoo.plugins import Plugin


class PruningAwareOptunaSearch(OptunaSearch):
    """OptunaSearch that tells Optuna the truth: a trial stopped early by ASHA (or rejected by the
    MACs ceiling) is PRUNED, a diverged or refused one FAIL; Ray alone would report them COMPLETE.

    Reads OptunaSearch's private ``_ot_trials``, ``_ot_study`` and ``_completed_trials`` (ray is
    capped below its next major version; tests/search/test_study.py checks they exist)."""

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        if stopping.current.requested:
            return None  # not now (FINISHED would be remembered by a restored run)
        if _launch_deadline is not None and time.time() > _launch_deadline:
            return Searcher.FINISHED  # --time-budget: launch nothing more; running trials finish
        config = super().suggest(trial_id)
        if trial_id in self._ot_trials:
            self._ot_trials[trial_id].set_user_attr("ray_trial_id", trial_id)
        return config

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        # A restored Ray run reports a resumed trial's end as a result only (no completion call).
        if result.get("status") == "completed" and trial_id in self._ot_trials and self._record_completion_after_failure(trial_id, result):
            return
        value = result.get("val_accuracy")
        if result.get("status") != "running" or not (isinstance(value, (int, float)) and math.isfinite(value)):
            return  # a trial's end reaches Optuna through on_trial_complete, as its value
        try:
            # Optuna's step is the epoch, not Ray's training_iteration: a retried trial's process
            # counts iterations from 1 again, so its epochs would land on steps Optuna already
            # holds and be dropped, or on the wrong ones.
            super().on_trial_result(trial_id, {**result, TRAINING_ITERATION: int(result["epoch"])})
        except optuna.exceptions.UpdateFinishedTrialError:
            # A trial that finished after Ray's last state save is rerun on --resume (it returns
            # at once from its summary); Optuna already holds its outcome.
            pass

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        status = (result or {}).get("status")
        if status == "completed" and trial_id in self._ot_trials and self._record_completion_after_failure(trial_id, result or {}):
            return
        if trial_id in self._ot_trials and trial_id not in self._completed_trials and status in ("pruned", "running", "diverged", "failed"):
            state = STATE_OF_STATUS.get(status, optuna.trial.TrialState.PRUNED)  # running: stopped by ASHA
            try:
                self._ot_study.tell(self._ot_trials[trial_id], state=state)
            except optuna.exceptions.UpdateFinishedTrialError:
                pass  # told before a driver restart
            self._completed_trials.add(trial_id)
            return
        super().on_trial_complete(trial_id, result=result, error=error)

    def _record_completion_after_failure(self, trial_id: str, result: dict[str, Any]) -> bool:
        """A trial told FAIL (a full disk, a crash past its retries) that a resume then finished.
        Optuna never changes a finished trial, so the outcome is added as a new COMPLETE trial
        with the same parameters and user attributes (``ray_trial_id`` included, and
        ``completes_trial``: the failed one's number): the study's latest trial for a Ray trial
        is its outcome, as results.csv's row is."""
        number = self._ot_trials[trial_id].number
        trials = self._ot_study.get_trials(deepcopy=False)
        earlier = next(t for t in trials if t.number == number)
        if earlier.state != optuna.trial.TrialState.FAIL:  # (a restored searcher may not know it failed)
            return False
        if any(t.user_attrs.get("completes_trial") == number for t in trials):  # told already
            return True
        metrics = self.metric if isinstance(self.metric, list) else [self.metric]
        values = [result.get(metric) for metric in metrics]
        if all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
            self._ot_study.add_trial(optuna.trial.create_trial(
                params=earlier.params, distributions=earlier.distributions, values=values,
                user_attrs={**earlier.user_attrs, "completes_trial": earlier.number},
            ))
        self._completed_trials.add(trial_id)
        return True


LAUNCH_STOPPED_FILE = "launching-stopped"
# When this driver stops launching trials (--time-budget). A module value, not the searcher's: a
# restored experiment brings back its pickled searcher, and the budget belongs to this run.
_launch_deadline: float | None = None


def error_message(error_file: str | None) -> str:
    """The last line of a trial's traceback (the exception itself), from Ray's error file."""
    try:
        lines = [line for line in Path(error_file or "").read_text().splitlines() if line.strip()]
    except OSError:
        return "the trial raised an error"
    return lines[-1].strip() if lines else "the trial raised an error"


class Progress(tune.Callback):
    """One short line per trial event, per-epoch progress with an ETA for the whole search, and
    results.csv rewritten as each trial ends.

    Epoch lines are rate-limited to one every ``EPOCH_LINE_SECONDS`` (a log stays readable with
    dozens of trials); on a terminal they update a live tqdm bar instead. ``Tuner.restore`` brings
    back the callbacks pickled with the first run, so all state is (re)loaded in ``setup``, which
    Ray calls at the start of every ``fit``.
    """

    EPOCH_LINE_SECONDS = 30.0

    def __init__(self, out: Path, space: str, total: int, at_once: int = 1) -> None:
        self.out, self.space, self.total, self.at_once = out, space, total, max(1, at_once)

    def setup(self, **info: Any) -> None:
        self.started = time.time()
        self.finished: dict[str, dict[str, Any]] = {row["trial_id"]: row for row in read_results(self.out)}
        self.resumed = bool(self.finished)  # rows from an earlier driver of this experiment
        self.running: set[str] = set()
        self.epochs: dict[str, tuple[int, int, float]] = {}  # running trial -> (done, planned, seconds per epoch)
        self.last_epoch_line = 0.0
        self._bar: tqdm | None = None

    @property
    def bar(self) -> tqdm:
        """The live bar on a terminal (disabled elsewhere), made on first use: Ray copies and
        pickles its callbacks, which a bar holding the terminal does not survive."""
        if getattr(self, "_bar", None) is None:
            self._bar = tqdm(total=self.total, initial=len(self.finished), unit="trial", dynamic_ncols=True, disable=not sys.stdout.isatty())
        return self._bar

    def __getstate__(self) -> dict[str, Any]:
        return {key: value for key, value in self.__dict__.items() if key != "_bar"}

    def _line(self, text: str) -> None:
        counts = pd.Series([row["status"] for row in self.finished.values()]).value_counts().to_dict()
        done = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "none"
        best = max((r for r in self.finished.values() if r["status"] == "completed"), key=lambda r: r["val_accuracy"] or 0, default=None)
        best_text = f"best val {best['val_accuracy']:.4f} ({best['trial_id']})" if best else "best -"
        tqdm.write(f"[{time.time() - self.started:7.0f}s] {len(self.finished)}/{self.total} done ({done}), {len(self.running)} running, {best_text} | {text}")

    def eta_seconds(self) -> float | None:
        """Seconds left for the whole search, from the epoch times measured so far: the running
        trials' remaining epochs, and the unstarted trials at the running ones' mean length,
        spread over the trials that run at once."""
        if not self.epochs:
            return None
        per_epoch = sum(seconds for _, _, seconds in self.epochs.values()) / len(self.epochs)
        running = sum((planned - done) * seconds for done, planned, seconds in self.epochs.values())
        unstarted = max(0, self.total - len(self.finished) - len(self.running))
        mean_planned = sum(planned for _, planned, _ in self.epochs.values()) / len(self.epochs)
        return (running + unstarted * mean_planned * per_epoch) / self.at_once

    def on_trial_result(self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any], **info: Any) -> None:
        if result.get("status") != "running" or not result.get("epoch"):
            return
        epoch, planned, seconds = int(result["epoch"]), int(result.get("epochs_planned") or result["epoch"]), float(result.get("seconds") or 0.0)
        self.epochs[trial.trial_id] = (epoch, planned, seconds)
        eta = self.eta_seconds()
        text = f"{trial.trial_id} epoch {epoch}/{planned} val {result.get('val_accuracy', float('nan')):.4f} ({seconds:.0f} s/epoch); search ETA ~{eta / 60:.0f} min" if eta is not None else ""
        if not self.bar.disable:
            self.bar.set_postfix_str(text, refresh=True)
        elif time.time() - self.last_epoch_line >= self.EPOCH_LINE_SECONDS:
            self.last_epoch_line = time.time()
            self._line(text)

    def on_step_begin(self, iteration: int, trials: list[Any], **info: Any) -> None:
        stopping.current.check(trials)

    def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self.running.add(trial.trial_id)

    def _finish(self, trial: Any, error: str | None) -> None:
        self.running.discard(trial.trial_id)
        self.epochs.pop(trial.trial_id, None)
        if (trial.last_result or {}).get("replayed") and trial.trial_id in self.finished:
            return  # a pruning an earlier driver recorded (see run_trial): its row stands
        row = result_row(self.space, trial.trial_id, trial.config, trial.last_result or {}, error)
        self.finished[trial.trial_id] = row
        write_results(self.out, list(self.finished.values()))
        label = " ".join(f"{k}={v}" for k, v in trial.config.items() if k != "seed")
        accuracy = f" val {row['val_accuracy']:.4f}" if row["val_accuracy"] is not None else ""
        self._line(f"{trial.trial_id} {row['status']}{accuracy}: {label} seed={trial.config.get('seed')}")
        self.bar.update(1)
        injected_faults().after_trials(len(self.finished), self.resumed)

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._finish(trial, None)

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._finish(trial, error_message(getattr(trial, "error_file", None)))

    def on_experiment_end(self, trials: list[Any], **info: Any) -> None:
        self.bar.close()


class ReleaseStoppedWorkers(tune.Callback):
    """Releases the Ray placement group of a trial of several workers when the trial ends.

    Ray Train removes its workers' group when its run ends. When Tune stops a trial (ASHA), it
    ends the trial's process, and with it the run's controller, before that; Ray Train then
    relies on a helper that asks Ray's State API whether the controller died, and the State API
    lives in the dashboard, which a local instance here does not start. The stopped trial's
    group would hold its CPUs and GPUs until the search ends, and a trial waiting for them would
    wait for ever. Removing the group, which every report of such a trial names, ends its workers.
    """

    def setup(self, **info: Any) -> None:
        self.groups: dict[str, str] = {}

    def on_trial_result(self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any], **info: Any) -> None:
        if result.get(WORKERS_PLACEMENT_GROUP):
            self.groups[trial.trial_id] = result[WORKERS_PLACEMENT_GROUP]

    def _release(self, trial: Any) -> None:
        import ray
        from ray.util.placement_group import PlacementGroup, placement_group_table, remove_placement_group

        group = self.groups.pop(trial.trial_id, None)
        if group is not None and placement_group_table().get(group, {}).get("state") not in (None, "REMOVED"):
            remove_placement_group(PlacementGroup(ray.PlacementGroupID.from_hex(group)))

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._release(trial)

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._release(trial)


def logger_callbacks(settings: SearchSettings, out: Path) -> list[Any]:
    """Ray's logger callbacks for ``--log``: TensorBoard event files and CSV progress tables in
    each trial's folder under ``OUT/ray/``, and an MLflow file store in ``OUT/mlruns`` (no server:
    ``mlflow ui --backend-store-uri OUT/mlruns``), one MLflow run per trial."""
    from ray.tune.logger import CSVLoggerCallback, TBXLoggerCallback

    made: list[Any] = []
    if "tensorboard" in settings.log:
        made.append(TBXLoggerCallback())
    if "csv" in settings.log:
        made.append(CSVLoggerCallback())
    if "mlflow" in settings.log:
        from ray.air.integrations.mlflow import MLflowLoggerCallback

        # MLflow 3 asks file stores to opt in (it steers users to a database); a file store is
        # what needs no server and travels with the experiment.
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        made.append(MLflowLoggerCallback(tracking_uri=(out / "mlruns").as_uri(), experiment_name=settings.space, save_artifact=False))
    return made


def remove_abandoned_directory(directory: Path) -> None:
    """An abandoned trial's directory: its parameters run again as a new trial, so what it holds
    (a partial checkpoint) would only be an orphan. Kept while a live process still owns it."""
    holder = read_holder(directory / LEASE_FILE)
    if holder is None or not holder.alive(time.time()):
        shutil.rmtree(directory, ignore_errors=True)


def trial_dirname(trial: Any) -> str:
    return str(trial.trial_id)


def fit(settings: SearchSettings, plan: Plan, plugins: list[Plugin], out: Path, resources: Resources, resuming: bool, precision: str, callbacks: list[Any] = ()) -> pd.DataFrame:
    """Run (or continue) the trials in Ray Tune, every one in ``precision``; return every trial's row."""
    recorded = {row["trial_id"]: row for row in read_results(out)}  # every earlier driver's finished trials
    context = TrialContext(
        # Trials run with their working directory changed: a data folder travels as an absolute path.
        experiment=str(out), space=settings.space, data=describe_source(settings.data), budget=settings.budget, family=spaces.space_family(settings.space), recipe={**settings.recipe, "precision": precision}, compile=settings.compile, deterministic=settings.deterministic, decode=settings.decode,
        plugins=plugins, threads=resources.threads, device="cuda" if resources.gpus_per_trial > 0 else "cpu",
        max_gmacs=settings.max_gmacs, data_seed=settings.data_seed, environment=forwarded_environment(),
        # Of a GPU (each worker's), or of the machine's memory: each worker holds a copy of the data.
        memory_share=resources.gpus_per_worker if resources.gpus_per_trial > 0 else 1 / (resources.at_once * resources.workers),
        workers=resources.workers, worker_bundle={"CPU": resources.cpus_per_worker, "GPU": resources.gpus_per_worker},
        pruned=frozenset(trial_id for trial_id, row in recorded.items() if row["status"] == "pruned"),
    )
    trainable = tune.with_resources(tune.with_parameters(run_trial, context=context), resources.trial_bundle())
    run_config = tune.RunConfig(
        name="ray",
        storage_path=str(out),
        verbose=0,
        callbacks=[Progress(out, settings.space, plan.total, resources.at_once), ReleaseStoppedWorkers(), *logger_callbacks(settings, out), *callbacks],
        failure_config=tune.FailureConfig(max_failures=settings.retries),
    )
    ray_dir = out / "ray"
    # After a --time-budget stop no trial was cut off, and Ray's restored generator would remember
    # that the searcher had finished: the rest is launched by a new Tuner from the study's waiting
    # trials instead.
    stopped_launching = out / LAUNCH_STOPPED_FILE
    restorable = resuming and tune.Tuner.can_restore(str(ray_dir)) and not stopped_launching.exists()
    study = open_study(out, settings.space, settings.objective, settings.budget)
    if resuming:
        known = {trial.trial_id for trial in tune.ExperimentAnalysis(str(ray_dir)).trials} if restorable else set()
        for ray_id in settle_abandoned(study, known, recorded, settings.objective):
            remove_abandoned_directory(out / "trials" / ray_id)
    if restorable:
        tuner = tune.Tuner.restore(str(ray_dir), trainable=trainable, resume_unfinished=True, resume_errored=True)
    else:
        pareto = settings.objective == "pareto"
        searcher = PruningAwareOptunaSearch(
            space=SpaceSampler(settings.space),
            metric=["val_accuracy", "macs"] if pareto else "val_accuracy",
            mode=["max", "min"] if pareto else "max",
            sampler=make_sampler(plan.sampler, settings.objective),
            study_name=study.study_name,
            storage=study_storage(out),
        )
        epochs = search_recipe(settings).epochs
        early_stopping = plan.sampler != "grid" and not pareto
        # max_t one past the last epoch: ASHA stops any trial that reaches max_t, which would cut
        # a finished trial off before its final report (test accuracy, summary) arrives.
        scheduler = ASHAScheduler(time_attr="epoch", metric="val_accuracy", mode="max", max_t=epochs + 1, grace_period=max(1, epochs // 4), reduction_factor=3) if early_stopping else None
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(
                search_alg=searcher,
                scheduler=scheduler,
                num_samples=plan.total - len(read_results(out)),
                max_concurrent_trials=resources.at_once,
                # A trial's process is kept for the next one: a fresh worker pays seconds of imports
                # (torch, zoo, search), which is most of a short or early-stopped trial. Not a trial
                # of several workers: when ASHA stops one, ending its process ends its Ray Train
                # controller, and ReleaseStoppedWorkers then frees its workers.
                reuse_actors=resources.workers == 1,
                trial_dirname_creator=trial_dirname,
            ),
            run_config=run_config,
        )
    global _launch_deadline
    _launch_deadline = time.time() + settings.time_budget if settings.time_budget else None
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # with verbose=0: no tables, our Progress lines only
    # Short smoke trials checkpoint every few seconds; Ray's "snapshotting too often" advice is noise here.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    if stopping.current.requested:  # told to stop before anything was launched
        raise SearchInterrupted(len(recorded), 0)
    # Tune's last INFO line ("Wrote the latest version of all result files ...") follows the
    # search's own summary as noise; its warnings and errors still show.
    tune_log = logging.getLogger("ray.tune.tune")
    level = tune_log.level
    tune_log.setLevel(max(level, logging.WARNING))
    try:
        grid = tuner.fit()
    finally:
        tune_log.setLevel(level)
    if _launch_deadline is not None and time.time() > _launch_deadline:
        stopped_launching.write_text(f"--time-budget {settings.time_budget} s stopped launching trials\n")
    else:
        stopped_launching.unlink(missing_ok=True)
    rows = {row["trial_id"]: row for row in read_results(out)}  # every driver's finished trials
    for result in grid:  # any trial the callback did not see end (e.g. restored as already done)
        trial_id = result.metrics.get("trial_id")
        if trial_id and trial_id not in rows and result.config and trial_id not in stopping.current.unfinished:  # no config: never started
            rows[trial_id] = result_row(settings.space, trial_id, result.config, result.metrics, str(result.error) if result.error else None)
    write_results(out, list(rows.values()))
    if stopping.current.requested:
        raise SearchInterrupted(len(rows), len(stopping.current.unfinished - set(rows)))
    return results_frame(list(rows.values()))
