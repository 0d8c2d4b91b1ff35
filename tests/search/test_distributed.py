"""Data-parallel runs (search.distributed): search.train under torchrun with two gloo workers on
the CPU, on loopback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from search.distributed import World
from search.recipes import resolve_recipe
from search.stream import EpochBatches
from search.train import check_world

REPO = Path(__file__).resolve().parents[2]
DETERMINISTIC = ["epoch", "train_loss", "train_error", "val_accuracy", "lr"]
TINY = ["--model", "resnet20", "--depth", "8", "--data", "synthetic", "--budget", "smoke", "--train-subset", "128", "--val-size", "64", "--test-size", "64", "--eval-batch-size", "64", "--threads", "1"]


def torchrun(args: list[str], workers: int = 2, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    # --standalone: the rendezvous on localhost; gloo's sockets on the loopback interface.
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={workers}", "-m", "search.train", *args]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300, env={**os.environ, "GLOO_SOCKET_IFNAME": "lo", **(env or {})})


def test_each_rank_takes_its_own_contiguous_part_of_every_global_batch() -> None:
    batch = torch.arange(8)
    parts = [World(rank, 2).part(batch) for rank in range(2)]
    assert [p.tolist() for p in parts] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    keyed = EpochBatches()
    keyed.set(1, torch.arange(16), 8, 0, 2, World(1, 2))  # the streaming loader's samples for rank 1
    assert keyed.batches == [[(1, i) for i in range(4, 8)], [(1, i) for i in range(12, 16)]]


def test_what_several_workers_cannot_do_is_refused_in_one_line() -> None:
    with pytest.raises(ValueError, match="batch_size 63 is the global batch; 2 workers need a multiple of 2"):
        check_world(resolve_recipe("smoke", {"batch_size": 63}), World(0, 2), torch.device("cpu"))
    with pytest.raises(ValueError, match="sync_bn needs CUDA workers"):
        check_world(resolve_recipe("smoke", {"sync_bn": True}), World(0, 2), torch.device("cpu"))
    check_world(resolve_recipe("smoke", {"batch_size": 63, "sync_bn": True}), World(), torch.device("cpu"))  # one process: nothing to share


@pytest.mark.slow  # three torchrun launches of two processes each (bad input: the test above, in one process)
def test_two_workers_train_under_torchrun_and_a_killed_run_resumes_bitwise(tmp_path: Path) -> None:
    whole = torchrun([*TINY, "--epochs", "2", "--out", str(tmp_path / "whole")])
    assert whole.returncode == 0, whole.stderr[-3000:]
    summary = json.loads((tmp_path / "whole" / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["world_size"] == 2 and summary["recipe"]["sync_bn"] is False
    # Killed after its first epoch (every rank exits), then the same command: it resumes there and
    # computes exactly what the uninterrupted run did.
    args = [*TINY, "--epochs", "2", "--out", str(tmp_path / "killed")]
    assert torchrun(args, env={"RESBENCH_FAULT": "exit_after_epoch:1"}).returncode != 0
    assert torch.load(tmp_path / "killed" / "checkpoint" / "checkpoint.pt", weights_only=True)["config"]["world_size"] == 2
    resumed = torchrun(args)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming killed from epoch 1/2" in resumed.stdout
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "killed" / "metrics.csv")[DETERMINISTIC], pd.read_csv(tmp_path / "whole" / "metrics.csv")[DETERMINISTIC], check_exact=True)
