"""Trials of several data-parallel workers (search.workers): Ray Train's TorchTrainer inside a
Tune trial, two gloo workers on this machine's CPU, on the suite's Ray instance; and the same run
launched by torchrun from the trial's recorded command."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import ray
from ray import tune
from ray.tune.experiment import Trial
from ray.util.placement_group import placement_group, placement_group_table

from search.cluster import has_ray_train
from search.launch import ReleaseStoppedWorkers
from search.run import main, run_search
from search.trial import WORKERS_PLACEMENT_GROUP
from tests.search.conftest import fast_recipe

pytestmark = pytest.mark.slow  # a real Ray instance, worker processes killed
REPO = Path(__file__).resolve().parents[2]
# .ci/lowest-versions runs these tests on the oldest Ray ResBench takes, which refuses them.
RAY_TRAIN_HERE = has_ray_train(ray.__version__)
DETERMINISTIC = ["epoch", "train_loss", "train_error", "val_accuracy", "lr"]


@pytest.mark.skipif(not RAY_TRAIN_HERE, reason=f"Ray {ray.__version__} lacks the Ray Train API a trial of several workers calls")
def test_a_trial_of_two_workers_killed_after_an_epoch_resumes_and_equals_its_torchrun_command(ray_session: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESBENCH_FAULT", "exit_after_epoch:1")  # both workers exit once the first epoch is checkpointed
    results = run_search("shortcuts", data="synthetic", budget="smoke", recipe=fast_recipe("epochs=2"), trials=1, baselines=False, workers_per_trial=2, out=str(tmp_path / "exp"))
    row = results.iloc[0]
    assert (row["status"], row["epochs"], row["world_size"]) == ("completed", 2, 2)
    [trial] = tune.ExperimentAnalysis(str(tmp_path / "exp" / "ray")).trials
    assert trial.num_failures == 1  # Tune restarted the killed trial; its new workers resumed from the checkpoint
    assert row["node"] == ray.get_runtime_context().get_node_id() and pd.isna(row["gpu_ids"])  # the leader's: this node, no GPU
    trained = tmp_path / "exp" / "trials" / row["trial_id"]
    assert json.loads((trained / "summary.json").read_text())["world_size"] == 2
    # The row's command launches the same two ranks under torchrun: uninterrupted, it computes
    # exactly what the killed and resumed Ray Train workers did.
    monkeypatch.delenv("RESBENCH_FAULT")
    command = shlex.split(row["command"])
    assert command[:4] == ["torchrun", "--standalone", "--nproc-per-node=2", "-m"]
    words = command[4:]
    words[words.index("--out") + 1] = str(tmp_path / "torchrun")
    # gloo's sockets on the loopback interface
    replay = subprocess.run([sys.executable, "-m", "torch.distributed.run", *command[1:4], *words], cwd=REPO, capture_output=True, text=True, timeout=300, env={**os.environ, "GLOO_SOCKET_IFNAME": "lo"})
    assert replay.returncode == 0, replay.stderr[-3000:]
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "torchrun" / "metrics.csv")[DETERMINISTIC], pd.read_csv(trained / "metrics.csv")[DETERMINISTIC], check_exact=True)
    assert json.loads((tmp_path / "torchrun" / "summary.json").read_text())["test_accuracy"] == row["test_accuracy"]


@pytest.mark.skipif(RAY_TRAIN_HERE, reason=f"Ray {ray.__version__} trains a trial of several workers")
def test_several_workers_on_an_older_ray_is_one_line_and_writes_nothing(ray_session: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "exp"
    assert main(["--space", "shortcuts", "--data", "synthetic", "--budget", "smoke", "--workers-per-trial", "2", "--out", str(out)]) == 2
    assert capsys.readouterr().err.strip() == f"error: a trial of 2 workers needs Ray 2.56 or newer (Ray Train's current API), and this is Ray {ray.__version__}; upgrade Ray, or train one worker per trial"
    assert not out.exists()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--workers-per-trial", "3"], "--workers-per-trial 3 (1 CPU per worker unless --cpus-per-trial says): a trial of 3 workers needs 3 CPU(s) but the cluster has 2; valid: at most 2 CPU(s) per trial"),
        (["--gpus-per-trial", "0.5"], "--gpus-per-trial 0.5: a trial needs 0.5 GPU(s) but the cluster has 0; valid: 0 (trials on CPUs), or --address of a cluster with GPUs"),
    ],
)
def test_more_than_the_cluster_holds_is_one_line_and_writes_nothing(ray_session: None, tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], message: str) -> None:
    out = tmp_path / "exp"
    assert main(["--space", "shortcuts", "--data", "synthetic", "--budget", "smoke", *flags, "--out", str(out)]) == 2
    assert capsys.readouterr().err.strip() == f"error: {message}"
    assert not out.exists()


def test_the_driver_releases_the_workers_of_a_trial_tune_stopped(ray_session: None) -> None:
    # The group a stopped trial's Ray Train workers held (their controller died with the trial's
    # process, and nothing here can tell Ray Train so): the driver removes the group its reports named.
    held = placement_group([{"CPU": 1}, {"CPU": 1}])
    assert held.wait(timeout_seconds=60)
    trial = Trial("run_trial", trial_id="stopped", stub=True)
    release = ReleaseStoppedWorkers()
    release.setup()
    release.on_trial_result(1, [trial], trial, {"epoch": 1, WORKERS_PLACEMENT_GROUP: held.id.hex()})
    release.on_trial_complete(2, [trial], trial)
    assert placement_group_table()[held.id.hex()]["state"] == "REMOVED"
    release.on_trial_complete(3, [trial], trial)  # once only; a trial that reported none is left alone
