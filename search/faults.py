"""Deterministic faults for the tests of resume, retry and divergence handling.

``RESBENCH_FAULT`` holds comma-separated ``name:value`` items:
- ``exit_after_epoch:K``: the process exits (status 3) right after checkpointing epoch K, on a
  run that started from scratch only, so the rerun or Ray's retry resumes and finishes;
- ``nan_at_step:K``: the loss of global step K becomes NaN;
- ``exit_driver_after_trials:K``: the search driver exits (status 3) once K trials have finished,
  unless it is resuming.
``RESBENCH_BARRIER=DIR:N`` makes each search trial wait, before training, until N trials have
arrived at DIR: a deterministic proof that N trials run at once. Both are unset in normal use.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

ENVIRONMENT_VARIABLE = "RESBENCH_FAULT"
KNOWN = ("exit_after_epoch", "nan_at_step", "exit_driver_after_trials")
BARRIER_VARIABLE = "RESBENCH_BARRIER"


def fault(name: str) -> int | None:
    for item in filter(None, os.environ.get(ENVIRONMENT_VARIABLE, "").split(",")):
        key, _, value = item.partition(":")
        if key not in KNOWN:
            raise ValueError(f"unknown {ENVIRONMENT_VARIABLE} item {key!r}; valid: {', '.join(KNOWN)}")
        if key == name:
            return int(value)
    return None


def wait_at_barrier(name: str, note: str = "", timeout: float = 120.0) -> None:
    """Arrive at the ``RESBENCH_BARRIER`` folder (leaving ``note`` in a file named ``name``) and
    wait for the others (no-op when unset)."""
    setting = os.environ.get(BARRIER_VARIABLE)
    if not setting:
        return
    folder, _, count = setting.rpartition(":")
    Path(folder).mkdir(parents=True, exist_ok=True)
    (Path(folder) / name).write_text(note)
    deadline = time.monotonic() + timeout
    while len(list(Path(folder).iterdir())) < int(count):
        if time.monotonic() > deadline:
            raise TimeoutError(f"barrier {folder}: fewer than {count} trials arrived in {timeout:.0f} s")
        time.sleep(0.05)
