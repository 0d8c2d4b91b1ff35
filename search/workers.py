"""A trial trained by several data-parallel workers: a Ray Train ``TorchTrainer`` launched from
inside the Tune trial (Ray Train's current way to tune distributed runs; ``Tuner(trainer)`` is
deprecated).

Every worker runs ``search.train.train`` on one rank of a process group Ray Train set up (gloo on
the CPU, NCCL on GPUs, one GPU per worker): the same loop, checkpoints and trial directory as a
one-device trial (``search.distributed`` says who does what). The leader's report of each epoch
reaches Tune through Ray Train's ``TuneReportCallback``, so ASHA sees it as any trial's; the
trial's process reports the final row from the summary the leader returns, with the leader's
node and GPUs. When Tune stops the trial (ASHA), it ends the trial's process, which owns the Ray
Train controller; the driver then releases the workers' placement group, named in every report
(``launch.ReleaseStoppedWorkers``), which ends them.

Imports Ray Train: ``search.trial`` imports this module only for a trial of several workers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ray.train
from ray.train.torch import TorchConfig, TorchTrainer
from ray.tune.integration.ray_train import TuneReportCallback

from search.config import TrialConfig
from search.distributed import EVALUATION_WAIT, current_world
from search.train import train
from search.trial import WORKERS_PLACEMENT_GROUP, TrialContext, prepare_process

RAY_TRAIN_FOLDER = "ray-train"  # under the experiment: Ray Train's own records of each trial's runs


def train_on_workers(trial: TrialConfig, out: Path, context: TrialContext, where: dict[str, Any], epochs: int, **train_options: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """Train ``trial`` into ``out`` on ``context.workers`` Ray Train workers; return the leader's
    summary (or an interrupted run's checkpoint) and where the leader ran (its node and GPUs, not
    this waiting process's). Bad input raises ValueError, as ``train`` does in one process; a
    crashed or killed worker raises Ray Train's error, which Tune retries (the new workers
    resume from the trial directory)."""
    trainer = TorchTrainer(
        rank_loop,
        train_loop_config={"trial": trial, "out": str(out), "context": context, "where": where, "epochs": epochs, "options": train_options},
        # The other ranks wait at a collective while the leader evaluates.
        torch_config=TorchConfig(timeout_s=int(EVALUATION_WAIT.total_seconds())),
        scaling_config=ray.train.ScalingConfig(num_workers=context.workers, use_gpu=context.device == "cuda", resources_per_worker=context.worker_bundle),
        run_config=ray.train.RunConfig(
            name=out.name, storage_path=str(Path(context.experiment) / RAY_TRAIN_FOLDER), callbacks=[TuneReportCallback()],
            failure_config=ray.train.FailureConfig(max_failures=0),  # Tune's retries restart the whole trial
        ),
    )
    try:
        leader = trainer.fit().return_value  # rank 0's
    except ray.train.WorkerGroupError as failed:
        refused = [error for error in failed.worker_failures.values() if isinstance(error, ValueError)]
        if refused:  # bad input: every rank would refuse it on every try
            raise ValueError(str(refused[0])) from None
        raise
    return leader["summary"], leader["placed"]


def rank_loop(loop: dict[str, Any]) -> dict[str, Any]:
    """One worker: its rank of the trial's training. Returns its summary and where it ran."""
    prepare_process(loop["context"])
    world, epochs = current_world(), loop["epochs"]
    group = ray.util.get_current_placement_group()
    placed = {"node": ray.get_runtime_context().get_node_id(), "gpu_ids": ",".join(map(str, ray.get_gpu_ids()))}
    where = {**loop["where"], **placed, "world_size": world.size, WORKERS_PLACEMENT_GROUP: group.id.hex() if group else None}

    def report(row: dict[str, Any]) -> None:
        # A collective: every rank reports each epoch; Tune hears the leader's.
        ray.train.report({**where, **row, "epochs_planned": epochs, "status": "running"} if world.leader else row)

    return {"summary": train(loop["trial"], Path(loop["out"]), report=report, log=None, **loop["options"]), "placed": placed}
