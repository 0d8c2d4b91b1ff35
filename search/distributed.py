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
import gc
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NoReturn, TypeVar

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
    """Leave the process group at once: this rank failed, and the others may never reach a
    barrier (the launcher ends them)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def exit_world(code: int) -> NoReturn:
    """End a rank of a launcher's world whose run ended as every rank agreed (finished,
    interrupted or diverged), with status ``code``; never returns.

    Every rank first waits for the others, so none tears its part down while the leader still
    evaluates and writes (NCCL asks every rank to destroy its communicators at the same point).
    Then the process ends without the interpreter's teardown: in torch 2.14 a gloo rank that had
    destroyed its group still aborted in C++ destructors at exit now and then ("terminate called
    without an active exception"; 12 of 120 two-rank torchrun runs of a bare all-reduce script on
    2 busy cores, none of 120 with this exit), and the launcher then failed the whole run and
    ended the leader mid-summary. Everything a run writes is on disk by now (atomic writes); a
    collection first ends what the run left to the garbage collector (a streamed run's loader
    workers), and the output streams are flushed."""
    gc.collect()
    dist.barrier()
    dist.destroy_process_group()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
