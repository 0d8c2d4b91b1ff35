"""The block contract battery: every registered block, built-in or a user's, must pass it.

Use it in your own tests (``from zoo.testing import check_block_contract``); the project's test
suite runs it over ``zoo.list_blocks()`` x every shortcut, so registering a block is enough to
have it checked.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from zoo._registry import get_block
from zoo.complexity import complexity
from zoo.ordering import unit_ordering
from zoo.resnet import ResNet
from zoo.shortcuts import ShortcutKind

SHORTCUTS = [kind.value for kind in ShortcutKind]


def check_block_contract(block: str, shortcut: str, *, seed: int = 0) -> None:
    """Raise AssertionError when ``block`` breaks the contract under ``shortcut``."""
    torch.manual_seed(seed)
    cls = get_block(block)
    assert hasattr(cls, "expansion"), f"block {block!r} lacks class attribute 'expansion'"
    pre_activation, _ = unit_ordering(cls)


    # The branch alone: channels * expansion out, spatial size divided by the stride.
    branch = cls(8, 4, 2)
    preact = getattr(branch, "preact", None)
    # A preact module is what the unit applies first, so the block must say it pre-activates (a
    # block may also pre-activate inside its own forward, without one).
    assert preact is None or pre_activation != "none", f"{block}: has a preact module but pre_activation is 'none'"
    x = torch.randn(2, 8, 8, 8)
    y = branch(preact(x) if preact is not None else x)
    assert y.shape == (2, 4 * branch.expansion, 4, 4), f"{block}: branch output {tuple(y.shape)}"

    # A tiny network with this block and shortcut: shape, finiteness, gradients, counted params.
    depth = 3 * getattr(cls, "layers_per_block", 2) + 2
    model = ResNet(block=block, shortcut=shortcut, depth=depth, widths=(4, 8, 16), num_classes=5)
    model.train()
    logits = model(torch.randn(4, 3, 16, 16))
    assert logits.shape == (4, 5), f"{block}/{shortcut}: logits {tuple(logits.shape)}"
    assert torch.isfinite(logits).all(), f"{block}/{shortcut}: non-finite output"
    F.cross_entropy(logits, torch.arange(4) % 5).backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None, f"{block}/{shortcut}: {name} received no gradient"
        assert torch.isfinite(parameter.grad).all(), f"{block}/{shortcut}: {name} has a non-finite gradient"
    counted = complexity(model, input_size=16).params
    real = sum(p.numel() for p in model.parameters())
    assert counted == real, f"{block}/{shortcut}: complexity says {counted} params, model has {real}"
