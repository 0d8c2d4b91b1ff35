"""Where and how a result was produced: device, precision, hardware, versions, commit.

One record (``record``) goes into every summary.json, search.json and probe.json, so a figure can
always be traced to its machine and code.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch

DEVICES = ("auto", "cpu", "cuda")
REPORTED_PACKAGES = ("torch", "torchvision", "ray", "optuna", "pandas", "timm")


def resolve_device(requested: str) -> torch.device:
    if requested not in DEVICES:
        raise ValueError(f"unknown device {requested!r}; valid: {', '.join(DEVICES)}")
    if requested == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was requested but no CUDA device is visible to this process")
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


# CPU instructions that run bf16 matrix products natively. With AMX tiles (Intel Sapphire Rapids
# and later) bf16 autocast trains a CIFAR ResNet about 1.8x faster than fp32 on the CPU; with
# AVX512-BF16 alone (AMD Zen 4 and later) 1.7x (ResNet-20, batch 256, 2 threads: 1,824 vs 1,074
# images/s), and the whole quick recipe 1.50x in wall time at the same accuracy (README,
# Measured). Without either, bf16 is emulated and slower, so "auto" stays in fp32.
FAST_BF16_FLAGS = frozenset({"amx_bf16", "avx512_bf16"})


def cpu_flags() -> frozenset[str]:
    """The instruction-set flags of this machine's CPU (empty where /proc/cpuinfo is missing)."""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def cpu_has_fast_bf16(flags: frozenset[str] | None = None) -> bool:
    """Decided from the CPU's flags, not from a timing: the same machine always decides the same."""
    return bool(FAST_BF16_FLAGS & (cpu_flags() if flags is None else flags))


def resolve_precision(requested: str, device: torch.device) -> str:
    if requested != "auto":
        return requested
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if cpu_has_fast_bf16() else "fp32"


def resolve_search_precision(requested: str, trials_on_gpu: bool) -> str:
    """The precision every trial of a search trains in, decided once by its driver (and kept by
    every resume) so that no two trials of one comparison differ in it. A driver without the
    trials' GPU takes bf16, which every data-centre GPU since Ampere runs natively."""
    if requested != "auto":
        return requested
    if trials_on_gpu:
        return resolve_precision("auto", torch.device("cuda")) if torch.cuda.is_available() else "bf16"
    return resolve_precision("auto", torch.device("cpu"))


def autocast(device: torch.device, precision: str) -> Any:
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()


def hardware_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return f"{line.split(':', 1)[1].strip()} ({os.cpu_count()} cores)"
    except OSError:
        pass
    return platform.processor() or "cpu"


def git_commit() -> str | None:
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if commit.returncode != 0:
        return None
    return commit.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


# The commit of the code this process runs, read when it first imported ResBench: a run that
# trains for an hour while its checkout moves on (a commit, an edit) was still trained by this code.
CODE_COMMIT = git_commit()


def code_commit() -> str | None:
    return CODE_COMMIT


def versions() -> dict[str, str]:
    """Python's version and the stack's, read from package metadata (nothing is imported). Python's
    matters beyond syntax: 3.14 changed how processes start on Linux, for one."""
    found = {"python": platform.python_version()}
    for package in REPORTED_PACKAGES:
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            pass
    return found


def now() -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())


def record(device: torch.device, precision: str | None = None, threads: int | None = None) -> dict[str, Any]:
    """The provenance record: the same keys in summary.json, search.json and probe.json."""
    return {
        "device": str(device),
        "hardware": hardware_name(device),
        "precision": precision,
        "threads": threads if threads is not None else torch.get_num_threads(),
        "torch_version": torch.__version__,
        "versions": versions(),
        "git_commit": code_commit(),
        "recorded_at": now(),
    }
