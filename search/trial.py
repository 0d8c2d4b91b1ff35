"""One Ray Tune trial: train (or resume) a configuration, reporting every epoch to Ray.

Runs inside a Ray worker, in a directory of its own under the experiment, which holds its only
checkpoint. The configuration is split into model and recipe here, once; the final
report carries what the trial built (its architecture, params, MACs), so the results table never
has to work it out again.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
from ray import tune

from search.config import TrialConfig, split_config
from search.lease import HEARTBEAT_SECONDS as LEASE_HEARTBEAT_SECONDS
from search.lease import STALE_SECONDS as LEASE_STALE_SECONDS
from search.plan import gmacs_of
from search.plugins import load_plugins
from search.results import summary_report
from search.stopping import CHECKPOINTED_FILE, STOP_REQUESTED_FILE
from search.testing import injected_faults
from search.train import INTERRUPTED, train
from zoo.plugins import Plugin


@dataclass(frozen=True)
class TrialContext:
    """What every trial of one search shares (sent once through Ray's object store)."""

    experiment: str
    space: str
    data: str
    budget: str
    family: str  # the space's: every trial's recipe comes from its budgets (a timm baseline's too)
    recipe: dict[str, Any]
    plugins: list[Plugin]
    threads: int
    device: str
    compile: str  # a torch.compile mode
    deterministic: bool  # only kernels that repeat bitwise (search.train --deterministic)
    decode: str  # where streamed runs decode JPEG training crops (search.stream.DECODE_PLACES)
    max_gmacs: float | None
    data_seed: int
    memory_share: float  # of the machine's memory (CPU trials) or of a GPU, per trial (per worker)
    environment: dict[str, str]  # the driver's RESBENCH_* settings (data cache, test switches)
    pruned: frozenset[str]  # trials results.csv holds as pruned: stopped for good
    workers: int = 1  # data-parallel Ray Train workers per trial (search.workers); 1: this process trains
    worker_bundle: dict[str, float] | None = None  # each worker's {"CPU": ..., "GPU": ...}


# A trial of several workers reports the Ray placement group that holds them (search.workers), so
# the driver can release it when Tune stops the trial (launch.ReleaseStoppedWorkers).
WORKERS_PLACEMENT_GROUP = "workers_placement_group"


def forwarded_environment() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if key.startswith("RESBENCH_")}


def prepare_process(context: TrialContext) -> None:
    """A Ray worker process about to train for this search (a trial's, or one of its Ray Train
    workers)."""
    # Worker processes outlive searches: drop settings of earlier drivers, take this one's.
    for key in [k for k in os.environ if k.startswith("RESBENCH_")]:
        del os.environ[key]
    os.environ.update(context.environment)
    load_plugins(context.plugins)  # blocks registered by plugins exist only where imported


def run_trial(config: dict[str, Any], context: TrialContext) -> None:
    """One Ray trial: train (or resume) a configuration, reporting every epoch with its checkpoint."""
    prepare_process(context)
    trial_id = tune.get_context().get_trial_id()
    where = {"trial_id": trial_id, "node": ray.get_runtime_context().get_node_id(), "gpu_ids": ",".join(map(str, ray.get_gpu_ids()))}
    if trial_id in context.pruned:
        # ASHA stopped it under a driver killed before Ray saved that, so the restored run
        # started it again: it stays stopped (trained on, it would finish against the study's
        # PRUNED). A trial that finished otherwise returns at once from its summary in train();
        # a failed one is retried, as a resume promises.
        tune.report({**where, "status": "pruned", "replayed": True, "epoch": 0, "val_accuracy": float("nan")})
        return
    injected_faults().wait_at_barrier(trial_id, json.dumps(where))
    model, model_overrides, recipe_overrides = split_config(config)
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
        compile=context.compile,
        deterministic=context.deterministic,
        decode=context.decode,
        family=context.family,
        workers=context.workers,
        plugins=tuple(plugin.module for plugin in context.plugins),
    )
    epochs = trial.recipe().epochs
    where["command"] = trial.command(out)
    if context.max_gmacs is not None:
        gmacs = gmacs_of(config, trial.recipe().image_size)
        if gmacs > context.max_gmacs:
            # Every result must carry the metric Ray and ASHA watch: NaN, which no one ranks.
            tune.report({**where, "status": "pruned", "epoch": 0, "epochs_planned": epochs, "val_accuracy": float("nan"), "macs": gmacs * 1e9, "reason": f"{gmacs:.3f} GMACs over --max-gmacs {context.max_gmacs}"})
            return
    # The trial's directory is its only checkpoint: Ray gets metrics, and a retried or restored
    # trial (same id, same directory) resumes from the checkpoint train() left there.
    def report(row: dict[str, Any]) -> None:
        tune.report({**where, **row, "epochs_planned": epochs, "status": "running"})

    (out / CHECKPOINTED_FILE).unlink(missing_ok=True)  # an earlier stop's; this attempt runs on
    try:
        # A retry may start while the dead attempt's lease still looks fresh (another node): wait it out.
        options = {"lease_wait": LEASE_STALE_SECONDS + LEASE_HEARTBEAT_SECONDS, "memory_share": context.memory_share, "stop_file": Path(context.experiment) / STOP_REQUESTED_FILE}
        if context.workers > 1:
            from search.workers import train_on_workers  # Ray Train: imported by the trials that use it

            summary, leader = train_on_workers(trial, out, context, where, epochs, **options)
            where.update(leader)  # the leader's node and GPUs, not this waiting process's
        else:
            summary = train(trial, out, report=report, log=None, **options)
    except ValueError as refused:
        # Bad input (bad data, no CUDA device, too big for its share, another live owner): every
        # try would end the same, so the trial ends failed now instead of being retried by Ray.
        # Crashes, kills and full disks raise other errors, which Ray retries.
        tune.report({**where, "status": "failed", "error": str(refused).strip().splitlines()[0][:300], "epoch": 0, "epochs_planned": epochs, "val_accuracy": float("nan")})
        return
    if summary["status"] == INTERRUPTED:
        # Neither finished nor failed: returning would end the trial in Ray's eyes. Wait here until
        # the driver ends the run (which ends this process); it keeps the trial unfinished.
        (out / CHECKPOINTED_FILE).write_text(summary["checkpoint"] + "\n")
        while True:
            time.sleep(1.0)
    tune.report(summary_report(summary, where, epochs, out))
