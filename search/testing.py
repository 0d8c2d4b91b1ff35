"""Deterministic faults for the tests of resume, retry and divergence handling.

Product code reaches them through one seam, ``injected_faults()``, which returns a ``Faults``
that does nothing unless the test environment asked for a fault:

``RESBENCH_FAULT`` holds comma-separated ``name:value`` items:
- ``exit_after_epoch:K``: the process exits (status 3) right after checkpointing epoch K, on a
  run that started from scratch only, so the rerun or Ray's retry resumes and finishes;
- ``nan_at_step:K``: the loss of global step K becomes NaN;
- ``exit_driver_after_trials:K``: the search driver exits (status 3) once K trials have finished,
  unless it is resuming;
- ``disk_full_from_epoch:K``: writing the checkpoint of epoch K or later fails as on a full disk
  (ENOSPC), on every try, until the variable is gone ("space freed");
- ``stall_at_step:K``: a run that started from scratch waits before global step K until it is
  asked to stop (SIGTERM, or its driver's stop request): a trial caught mid-epoch, every time;
- ``stall_driver_before_ray:S``: the search driver, its data loaded, holds before Ray starts
  until it is asked to stop (at most S seconds): a driver stopped before any trial started;
- ``stall_after_training:S``: a run waits up to S seconds after its training loop, before its
  final evaluation and summary, where a signal is no longer the loop's to handle: a run stopped
  there, every time.
``RESBENCH_BARRIER=DIR:N`` makes each search trial wait, before training, until N trials have
arrived at DIR: a deterministic proof that N trials run at once. Both are unset in normal use.
"""

from __future__ import annotations

import errno
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

FAULT_VARIABLE = "RESBENCH_FAULT"
BARRIER_VARIABLE = "RESBENCH_BARRIER"
KNOWN = ("exit_after_epoch", "nan_at_step", "exit_driver_after_trials", "stall_at_step", "stall_driver_before_ray", "stall_after_training", "disk_full_from_epoch")
EXIT_STATUS = 3


@dataclass(frozen=True)
class Faults:
    exit_after_epoch: int | None = None
    nan_at_step: int | None = None
    exit_driver_after_trials: int | None = None
    stall_at_step: int | None = None
    stall_driver_before_ray: int | None = None
    stall_after_training: int | None = None
    disk_full_from_epoch: int | None = None
    barrier: str | None = None

    def corrupt_loss(self, loss: torch.Tensor, step: int) -> torch.Tensor:
        return loss * float("nan") if step == self.nan_at_step else loss

    def of_run(self, resumed: bool) -> Faults:
        """The faults one run meets: ``stall_at_step`` holds only a run that started from scratch
        (its rerun resumes and goes past the step, whichever epoch that is in)."""
        return replace(self, stall_at_step=None) if resumed else self

    def stall(self, step: int, stop: Any) -> None:
        """Before global step ``step``: wait until ``stop.requested`` (a Preemption)."""
        if step == self.stall_at_step:
            hold(lambda: stop.requested)

    def before_ray(self, stopped: Callable[[], bool]) -> None:
        """The search driver before Ray starts: say so (the test's cue), then wait for ``stopped()``."""
        if self.stall_driver_before_ray is not None:
            print("held before Ray starts (RESBENCH_FAULT)", flush=True)
            hold(stopped, self.stall_driver_before_ray)

    def before_summary(self) -> None:
        """After the training loop: wait (a signal interrupts the sleep, as it would the work)."""
        if self.stall_after_training is not None:
            hold(lambda: False, self.stall_after_training)

    def before_checkpoint(self, epoch: int, path: Path) -> None:
        if self.disk_full_from_epoch is not None and epoch >= self.disk_full_from_epoch:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    def after_checkpoint(self, epoch: int, resumed: bool) -> None:
        if epoch == self.exit_after_epoch and not resumed:
            os._exit(EXIT_STATUS)

    def after_trials(self, finished: int, resumed: bool) -> None:
        if self.exit_driver_after_trials is not None and not resumed and finished >= self.exit_driver_after_trials:
            os._exit(EXIT_STATUS)

    def wait_at_barrier(self, name: str, note: str = "", timeout: float = 120.0) -> None:
        """Arrive at the barrier folder (leaving ``note`` in a file named ``name``) and wait for
        the others."""
        if not self.barrier:
            return
        folder, _, count = self.barrier.rpartition(":")
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / name).write_text(note)
        deadline = time.monotonic() + timeout
        while len(list(Path(folder).iterdir())) < int(count):
            if time.monotonic() > deadline:
                raise TimeoutError(f"barrier {folder}: fewer than {count} trials arrived in {timeout:.0f} s")
            time.sleep(0.05)


def hold(released: Callable[[], bool], seconds: float = math.inf) -> None:
    """Wait until ``released()`` or ``seconds`` have passed, looking 20 times a second."""
    deadline = time.monotonic() + seconds
    while not released() and time.monotonic() < deadline:
        time.sleep(0.05)


def injected_faults() -> Faults:
    """The seam: the faults the environment asks for (none in normal use)."""
    values: dict[str, int] = {}
    for item in filter(None, os.environ.get(FAULT_VARIABLE, "").split(",")):
        key, _, value = item.partition(":")
        if key not in KNOWN:
            raise ValueError(f"unknown {FAULT_VARIABLE} item {key!r}; valid: {', '.join(KNOWN)}")
        values[key] = int(value)
    return Faults(**values, barrier=os.environ.get(BARRIER_VARIABLE) or None)
