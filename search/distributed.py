"""Data-parallel training: the world of processes one run trains in, whoever launched them
(``torchrun``, or Ray Train's workers inside a Tune trial).

Every rank builds the same model from the same seed, draws the same epoch order and the same
augmentation for the whole global batch, and trains on its own contiguous part of each batch
(``batch_size`` is the global batch, split evenly); DistributedDataParallel averages the
gradients. So each rank holds a disjoint shard of every epoch and a run's random choices do not
depend on how many ranks share it. BatchNorm keeps per-rank statistics (as the paper's multi-GPU
training did) unless the recipe asks for ``sync_bn``. Rank 0 (the leader) evaluates, writes the
checkpoints, metrics and summary, and reports; the others follow. Decisions that must be the
same everywhere (stop now, checkpoint now, the loss went non-finite) are agreed by an all-reduce.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.distributed as dist

Batch = TypeVar("Batch", bound=Sequence)
EVALUATION_WAIT = datetime.timedelta(hours=2)


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1

    @property
    def leader(self) -> bool:
        return self.rank == 0

    def part(self, batch: Batch | None) -> Batch | None:
        """This rank's contiguous share of a global batch (whose size the world divides); None
        stays None (a batch without colour shifts)."""
        if batch is None:
            return None
        share = len(batch) // self.size
        return batch[self.rank * share : (self.rank + 1) * share]

    def _collective_device(self, device: torch.device) -> torch.device:
        return device if dist.get_backend() == "nccl" else torch.device("cpu")

    def any(self, *flags: bool, device: torch.device) -> list[bool]:
        """Each flag, true on any rank (one all-reduce for all of them)."""
        if self.size == 1:
            return list(flags)
        values = torch.tensor([int(flag) for flag in flags], device=self._collective_device(device))
        dist.all_reduce(values, op=dist.ReduceOp.MAX)
        return [bool(value) for value in values.tolist()]

    def total(self, value: torch.Tensor) -> torch.Tensor:
        """The sum of ``value`` over the ranks."""
        if self.size == 1:
            return value
        summed = value.detach().clone().to(self._collective_device(value.device))
        dist.all_reduce(summed, op=dist.ReduceOp.SUM)
        return summed.to(value.device)

    def earliest(self, step: torch.Tensor) -> torch.Tensor:
        """The smallest non-negative ``step`` over the ranks (-1 where none has one)."""
        if self.size == 1:
            return step
        never = torch.iinfo(torch.int64).max
        mine = torch.where(step >= 0, step, never).to(self._collective_device(step.device))
        dist.all_reduce(mine, op=dist.ReduceOp.MIN)
        return torch.where(mine == never, -1, mine).to(step.device)


def current_world() -> World:
    """The world of the process group this process belongs to (one process when there is none)."""
    if not (dist.is_available() and dist.is_initialized()):
        return World()
    return World(dist.get_rank(), dist.get_world_size())


def join_launcher_world(device: str) -> World:
    """Under ``torchrun`` (WORLD_SIZE > 1 in the environment), join its process group: NCCL on
    CUDA, gloo on the CPU. Anywhere else, one process."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        on_cuda = device != "cpu" and torch.cuda.is_available()
        if on_cuda:  # each rank's device, which search.train takes as the current one (Ray Train sets it too)
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        # The other ranks wait at their next collective while the leader evaluates (10-crop on a
        # 50k validation set can take minutes): a timeout far past NCCL's default 10 minutes.
        dist.init_process_group("nccl" if on_cuda else "gloo", timeout=EVALUATION_WAIT)
    return current_world()


def leave_world() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
