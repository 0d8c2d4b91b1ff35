"""Searches over a real multi-node Ray cluster, all of it on loopback (ray.cluster_utils)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest

from leaderboards.schema import read_table
from search.cluster import check_ray_train
from search.study import study_storage
from tests.search.conftest import ray_environment

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow  # real Ray instances
FAST = ["train_subset=128", "val_size=64", "test_size=64", "eval_batch_size=64", "epochs=1"]


@pytest.fixture
def cluster_factory() -> Iterator[object]:
    from ray.cluster_utils import Cluster

    started: list[Cluster] = []
    temp = tempfile.mkdtemp(prefix="rbcl", dir="/tmp")  # Ray socket paths must stay short
    previous = dict(os.environ)
    os.environ.update(ray_environment(temp))  # before the nodes start: they bind 127.0.0.1 only

    def start(nodes: list[dict[str, float]]) -> Cluster:
        cluster = Cluster(initialize_head=True, connect=False, head_node_args=nodes[0])
        for node in nodes[1:]:
            cluster.add_node(**node)
        cluster.wait_for_nodes()
        started.append(cluster)
        return cluster

    yield start
    for cluster in started:
        cluster.shutdown()
    os.environ.clear()
    os.environ.update(previous)


def search(address: str, out: Path, *extra: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    args = ["--space", "shortcuts", "--budget", "smoke", "--data", "synthetic", "--no-baselines", "--trials", "2", "--address", address, "--out", str(out), "--recipe", *FAST, *extra]
    return subprocess.run([sys.executable, "-m", "search.run", *args], cwd=REPO, capture_output=True, text=True, timeout=600, env={**os.environ, **env})


def test_two_node_cluster_runs_trials_on_both_nodes(cluster_factory, tmp_path: Path) -> None:
    cluster = cluster_factory([{"num_cpus": 1}, {"num_cpus": 1}])
    barrier = tmp_path / "barrier"
    # One CPU per node and a barrier of two: the two trials must run at once, so on both nodes.
    result = search(cluster.address, tmp_path / "exp", env={"RESBENCH_BARRIER": f"{barrier}:2"})
    assert result.returncode == 0, result.stderr[-3000:]
    results = read_table(tmp_path / "exp" / "results.csv")
    assert (results["status"] == "completed").all()
    assert results["node"].nunique() == 2
    addresses = {json.loads(p.read_text())["node"] for p in barrier.iterdir()}
    assert addresses == set(results["node"])


def test_fractional_gpus_pack_two_trials_per_gpu_and_fail_loudly_without_cuda(cluster_factory, tmp_path: Path) -> None:
    cluster = cluster_factory([{"num_cpus": 2, "num_gpus": 1}])
    barrier = tmp_path / "barrier"
    result = search(cluster.address, tmp_path / "exp", "--gpus-per-trial", "0.5", env={"RESBENCH_BARRIER": f"{barrier}:2"})
    placements = [json.loads(p.read_text()) for p in barrier.iterdir()]
    assert len(placements) == 2, "both trials waited at the barrier together"
    assert {p["gpu_ids"] for p in placements} == {"0"} and len({p["node"] for p in placements}) == 1
    # This machine has no CUDA device: a trial given a GPU fails instead of training on the CPU.
    results = read_table(tmp_path / "exp" / "results.csv")
    assert result.returncode == 1 and len(results) == 2 and (results["status"] == "failed").all()
    assert results["error"].str.contains("no CUDA device").all(), results["error"].tolist()
    # Bad input fails the same on every try: the trial ends failed at once, Ray never retries it.
    assert not list((tmp_path / "exp" / "ray").rglob("error.txt")), "Ray saw the trial raise (and retried it)"
    study = optuna.load_study(study_name="shortcuts", storage=study_storage(tmp_path / "exp"))
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.FAIL] * 2


def test_ray_imported_before_the_search_could_bind_loopback_is_refused(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if key != "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"}
    code = f"import sys, ray\nfrom search.run import main\nsys.exit(main(['--space', 'shortcuts', '--data', 'synthetic', '--budget', 'smoke', '--out', {str(tmp_path / 'exp')!r}]))"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "ray was imported before ResBench could keep its local instance on 127.0.0.1" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "exp").exists()


@pytest.mark.parametrize(("version", "refused"), [("2.41.0", True), ("2.55.1", True), ("2.56.0", False), ("2.60.0", False), ("3.0.0.dev0", False)])
def test_several_workers_per_trial_need_the_ray_train_api_they_call(version: str, refused: bool) -> None:
    if not refused:
        check_ray_train(version, workers=2)
        return
    with pytest.raises(ValueError) as error:
        check_ray_train(version, workers=2)
    assert str(error.value) == f"a trial of 2 workers needs Ray 2.56 or newer (Ray Train's current API), and this is Ray {version}; upgrade Ray, or train one worker per trial"
