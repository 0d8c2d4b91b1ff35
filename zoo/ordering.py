"""What a residual unit does around its branch: the activation ordering of a block.

Identity Mappings (He et al., 2016, Fig. 4) moves BN and ReLU around the addition. A block says
where with two class attributes: ``pre_activation``, applied to the unit's input before the branch
and a projection shortcut (``none``, ``relu``, ``bn_relu``; the block owns the module as
``preact``), and ``after_addition``, applied to the sum (``relu``, ``none``, ``bn_relu``).
"""

from __future__ import annotations

import torch.nn as nn

PRE_ACTIVATIONS = ("none", "relu", "bn_relu")
AFTER_ADDITIONS = ("relu", "none", "bn_relu")
# The orderings of Identity Mappings Fig. 4, named by (pre_activation, after_addition). (c) and
# any other branch that ends in its own activation share ("none", "none"): such a block says so
# in its ``ordering`` attribute.
ORDERINGS = {
    ("none", "relu"): "original",  # Fig. 4a
    ("none", "bn_relu"): "BN after addition",  # Fig. 4b
    ("none", "none"): "nothing after addition",
    ("relu", "none"): "ReLU-only pre-activation",  # Fig. 4d
    ("bn_relu", "none"): "full pre-activation",  # Fig. 4e
}


def unit_ordering(cls: type[nn.Module]) -> tuple[str, str]:
    """(pre_activation, after_addition) of a block class, checked.

    ``post_activation`` is the contract's first spelling, still accepted: True is the original
    ordering, False full pre-activation.
    """
    legacy = getattr(cls, "post_activation", None)
    after = getattr(cls, "after_addition", None)
    pre = getattr(cls, "pre_activation", None)
    if after is None and legacy is not None:
        after = "relu" if legacy else "none"
        pre = pre or ("none" if legacy else "bn_relu")
    pre = pre or "none"
    name = getattr(cls, "block_name", cls.__name__)
    if after not in AFTER_ADDITIONS:
        raise ValueError(f"block {name!r}: after_addition {after!r} is not one of {', '.join(AFTER_ADDITIONS)}")
    if pre not in PRE_ACTIVATIONS:
        raise ValueError(f"block {name!r}: pre_activation {pre!r} is not one of {', '.join(PRE_ACTIVATIONS)}")
    return pre, after


def ordering_name(cls: type[nn.Module]) -> str:
    """The block's activation ordering in the sequel's words ("original", "full pre-activation", ...)."""
    pre, after = unit_ordering(cls)
    return getattr(cls, "ordering", None) or ORDERINGS.get((pre, after), f"{pre} before, {after} after addition")
