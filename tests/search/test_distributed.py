"""Data-parallel runs (search.distributed): how ranks share a batch, and what several ranks refuse.
Two gloo ranks training, killed and resumed, under Ray Train and under torchrun:
tests/search/test_workers.py."""

from __future__ import annotations

import pytest
import torch

from search.distributed import World
from search.recipes import resolve_recipe
from search.stream import EpochBatches
from search.train import check_world


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
