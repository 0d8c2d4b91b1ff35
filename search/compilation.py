"""``torch.compile`` for a run's forward and backward: an execution setting, like the device.

Compiling changes how a run executes, not what it computes, so the mode is not part of a run's
identity: a compiled run resumes from an eager run's checkpoint and the other way round (the
checkpoint always holds the uncompiled module's state dict). Compile time is accounted apart, so
images/s measures training, and wall time still says what the run cost.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

# off: eager. default: Inductor kernels. reduce-overhead: Inductor plus CUDA graphs, which pay off
# for small batches, where launching kernels costs more than running them (the paper's batch 128
# on a CIFAR ResNet). max-autotune: Inductor benchmarks kernel choices at compile time (minutes).
# aot_eager: traces forward and backward as compile does but runs them eagerly; it checks that a
# model compiles, in seconds (tests, debugging a graph break), and is never faster.
COMPILE_MODES = ("off", "default", "reduce-overhead", "max-autotune", "aot_eager")


def check_mode(mode: str) -> str:
    if mode not in COMPILE_MODES:
        raise ValueError(f"unknown compile mode {mode!r}; valid: {', '.join(COMPILE_MODES)}")
    return mode


def compiled(model: nn.Module, mode: str, deterministic: bool = False) -> Any:
    """The callable a run trains and evaluates with: ``model`` itself, or a compiled wrapper that
    shares its parameters and buffers. ``deterministic``: Inductor skips the kernel choices it
    would time on the device where they change the numbers, so two compiles pick alike."""
    check_mode(mode)
    if mode == "off":
        return model
    # Each run starts from empty in-process caches: Dynamo keeps a few graphs per function and
    # falls back to eager past them, which a worker training many architectures would reach.
    # (Inductor's on-disk cache still makes a recompile of a known graph fast.)
    torch.compiler.reset()
    if mode == "aot_eager":
        return torch.compile(model, backend="aot_eager")
    import torch._inductor.config as inductor

    if hasattr(inductor, "deterministic"):  # torch 2.4's Inductor has no such switch
        inductor.deterministic = deterministic  # read when the graph compiles, at the first step
    return torch.compile(model, mode=mode)


def seconds_compiling() -> float:
    """Seconds this process has spent compiling graphs so far (forward and backward), from
    Dynamo's own accounting; a run takes the difference across its work."""
    try:
        from torch._dynamo.utils import calculate_time_spent
    except ImportError:  # pragma: no cover - every torch this project supports has it
        return 0.0
    spent = calculate_time_spent()
    return float(spent.get("total_wall_time") or spent.get("entire_frame_compile", 0.0) + spent.get("entire_backward_compile", 0.0))


def graphs_compiled() -> int:
    """Graphs Dynamo has compiled in this process: a recompile shows as one more."""
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])
