"""How big a network would be, from its description alone: nothing is built.

A 100,000-layer net costs minutes and gigabytes of Python objects even on the meta device, and a
width multiplier of 1000 exhausts memory before the first step; ``estimate`` prices them in
microseconds so callers can refuse them first. The figures are estimates (conv and linear
weights; the activations one image keeps for the backward pass in fp32), good to tens of percent,
which is what a refusal needs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from zoo._registry import check_option_types, get_model_entry
from zoo.blocks import bottleneck_geometry
from zoo.resnet import INPUT_SIZES, STAGE_WIDTHS, ResNet, check_sizes, stage_blocks, stage_depths

FLOAT_BYTES = 4
# Tensors a unit keeps per output element for backward: a conv output and a BN output (ReLUs run
# in place).
KEPT_PER_ELEMENT = 2
# Weights, their gradients and SGD's momentum, plus a copy while a checkpoint is written.
WEIGHT_COPIES = 4


@dataclass(frozen=True)
class SizeEstimate:
    params: int
    activation_bytes_per_image: int

    def training_bytes(self, batch_size: int) -> int:
        return self.params * FLOAT_BYTES * WEIGHT_COPIES + self.activation_bytes_per_image * batch_size

    def describe(self, batch_size: int) -> str:
        return f"~{self.params / 1e6:,.1f}M parameters and ~{self.training_bytes(batch_size) / 2**30:,.1f} GiB to train at batch {batch_size}"


def estimate(name: str, input_size: int | None = None, **overrides: Any) -> SizeEstimate | None:
    """Parameters and activation memory of ``create_model(name, **overrides)``; None for networks
    whose size options are fixed (VGG), which need no estimate. Bad options raise ValueError."""
    entry = get_model_entry(name)
    if entry.builder is not ResNet:
        return None
    check_option_types(overrides)
    config = {**entry.defaults, **overrides}
    family = config["family"]
    check_sizes(config.get("widths") or STAGE_WIDTHS[family], config.get("width_multiplier", 1), config.get("num_classes", 1), config.get("in_chans", 3))
    widths = [int(w) * int(config.get("width_multiplier", 1)) for w in (config.get("widths") or STAGE_WIDTHS[family])]
    block = config["block"]
    classes = stage_blocks(block, len(widths))
    layers = getattr(classes[0], "layers_per_block", 2)
    counts = stage_depths(family, int(config["depth"]), layers, len(widths))
    shortcut = str(config.get("shortcut", "A"))
    side = (input_size or INPUT_SIZES[family]) // (1 if family == "cifar" else 4)
    stem = widths[0] // int(config.get("width_multiplier", 1))
    params, kept = 9 * 3 * stem, 0
    channels = stem
    for stage, (cls, count, width) in enumerate(zip(classes, counts, widths)):
        expansion = cls.expansion if config.get("expansion") is None else int(config["expansion"])
        out = width * expansion
        # The bottleneck's own geometry, which refuses a base_width or groups below 1 as the build does.
        inner = bottleneck_geometry(width, 1, config.get("base_width", 64), config.get("groups", 1), config.get("stride_on", "1x1"))[0] if layers == 3 else width
        area = max(1, side >> stage) ** 2
        for unit in range(count):
            if layers == 3:
                params += channels * inner + 9 * inner * inner // int(config.get("groups", 1)) + inner * out
            else:
                params += 9 * channels * width + 9 * width * out
            changes_shape = channels != out or (unit == 0 and stage > 0)
            if shortcut == "C" or (shortcut == "B" and changes_shape):
                params += channels * out  # a 1x1 projection ("A" zero-pads, "none" has no shortcut)
            kept += area * (inner * (layers - 1) + out) * KEPT_PER_ELEMENT
            channels = out
    params += channels * int(config.get("num_classes", 10))
    return SizeEstimate(int(params), int(kept * FLOAT_BYTES))


def available_memory_bytes() -> int:
    """Memory this machine can still give (Linux's available pages; the total where unknown)."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_buildable(name: str, **overrides: Any) -> None:
    """Refuse, in one line, a network whose weights alone exceed this machine's free memory."""
    size = estimate(name, **overrides)
    if size is None:
        return
    available = available_memory_bytes()
    if size.params * FLOAT_BYTES > available:
        free = available / 2**30
        raise ValueError(f"{name} with {overrides} would have ~{size.params / 1e6:,.0f}M parameters (~{size.params * FLOAT_BYTES / 2**30:,.1f} GiB of weights); this machine has {free:,.1f} GiB free")
