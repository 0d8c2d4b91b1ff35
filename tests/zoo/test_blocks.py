"""The contract battery, run over every registered block (a user's included) x every shortcut."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn as nn

import zoo
from zoo.blocks import BasicBranch, PreActBasicBlock
from zoo.ordering import unit_ordering
from zoo.testing import SHORTCUTS, check_block_contract


@zoo.register("test_se_basic")
class SqueezeExciteBasic(nn.Module):
    """A user's block, registered the way the README shows: it gets the battery by registering."""

    expansion = 1
    after_addition = "relu"
    layers_per_block = 2

    def __init__(self, in_channels: int, channels: int, stride: int = 1, *, reduction: int = 4, **options: Any) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.gate = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(channels, max(1, channels // reduction), 1),
            nn.ReLU(),
            nn.Conv2d(max(1, channels // reduction), channels, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
        return x * self.gate(x)


@pytest.mark.parametrize("shortcut", SHORTCUTS)
@pytest.mark.parametrize("block", zoo.list_blocks())
def test_block_contract(block: str, shortcut: str) -> None:
    check_block_contract(block, shortcut)


def test_user_block_is_in_the_battery_and_buildable_by_name() -> None:
    assert "test_se_basic" in zoo.list_blocks()
    model = zoo.create_model("resnet20", block="test_se_basic", shortcut="B", reduction=2)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    # Named in its label: once "ResNet-20 (B)", the basic net's, in a page's plots and claims.
    assert zoo.describe("resnet20", block="test_se_basic", shortcut="B").label == "ResNet-20 (B) block=test_se_basic"


def test_projection_takes_the_preactivated_input() -> None:
    # With a projection, a pre-activation unit's shortcut sees BN-ReLU(x): shifting x by a
    # constant that BN removes must leave the unit's output unchanged (eval-mode BN would not,
    # so use train mode where BN normalises by batch statistics).
    model = zoo.create_model("preresnet164", shortcut="C").train()
    unit = model.layer2[0]
    x = torch.randn(4, 64, 8, 8)
    assert torch.allclose(unit(x), unit(x + 3.0), atol=1e-4)
    # Identity shortcuts carry the raw input: the same shift shows up in the output.
    identity_unit = zoo.create_model("preresnet164", shortcut="A").train().layer1[1]
    y = torch.randn(4, 64, 8, 8)
    assert torch.allclose(identity_unit(y + 3.0) - identity_unit(y), torch.full_like(y, 3.0), atol=1e-4)


def test_zero_pad_shortcut_subsamples_and_pads() -> None:
    model = zoo.create_model("resnet20").eval()
    unit = model.layer2[0]
    x = torch.randn(1, 16, 32, 32)
    shortcut = unit.shortcut(x)
    assert shortcut.shape == (1, 32, 16, 16)
    assert torch.equal(shortcut[:, :16], x[:, :, ::2, ::2]) and not shortcut[:, 16:].any()
    assert sum(p.numel() for p in unit.shortcut.parameters()) == 0


def test_plain_net_has_no_shortcuts() -> None:
    model = zoo.create_model("plain20")
    assert all(unit.shortcut is None for unit in model.units())


def test_expansion_option_overrides_class_value() -> None:
    model = zoo.create_model("resnet164", expansion=2)
    assert model.num_features == 128 and model.layer1[0].branch.expansion == 2


# Identity Mappings Fig. 4, read left to right: what one unit runs, "+" being the addition.
FIG4_BASIC = {
    "basic": "conv bn relu conv bn + relu",  # (a) original
    "basic_bn_after_add": "conv bn relu conv + bn relu",  # (b) BN after addition
    "basic_relu_before_add": "conv bn relu conv bn relu +",  # (c) ReLU before addition
    "relu_preact_basic": "relu conv bn relu conv bn +",  # (d) ReLU-only pre-activation
    "preact_basic": "bn relu conv bn relu conv +",  # (e) full pre-activation
}
FIG4_BOTTLENECK = {
    "bottleneck": "conv bn relu conv bn relu conv bn + relu",
    "bottleneck_bn_after_add": "conv bn relu conv bn relu conv + bn relu",
    "bottleneck_relu_before_add": "conv bn relu conv bn relu conv bn relu +",
    "relu_preact_bottleneck": "relu conv bn relu conv bn relu conv bn +",
    "preact_bottleneck": "bn relu conv bn relu conv bn relu conv +",
}
KINDS = {nn.Conv2d: "conv", nn.BatchNorm2d: "bn", nn.ReLU: "relu"}


def module_order(root: nn.Module, run: Any, addition_after: nn.Module | None = None) -> str:
    """The conv/bn/relu modules under ``root`` in the order ``run()`` calls them; "+" when
    ``addition_after`` (a unit's branch) returns, which is when the unit adds its shortcut."""
    order: list[str] = []
    handles = [m.register_forward_hook(lambda m, i, o: order.append(KINDS[type(m)])) for m in root.modules() if type(m) in KINDS]
    if addition_after is not None:
        handles.append(addition_after.register_forward_hook(lambda m, i, o: order.append("+")))
    try:
        run()
    finally:
        for handle in handles:
            handle.remove()
    return " ".join(order)


@pytest.mark.parametrize(("block", "expected"), [*FIG4_BASIC.items(), *FIG4_BOTTLENECK.items()])
def test_unit_runs_the_sequels_fig4_ordering(block: str, expected: str) -> None:
    depth = 20 if "bottleneck" in block else 14  # two units per stage
    unit = zoo.create_model("resnet20", block=block, depth=depth, shortcut="A").layer1[1]  # identity shortcut
    x = torch.randn(2, unit.branch.conv1.in_channels, 8, 8)
    assert module_order(unit, lambda: unit(x), addition_after=unit.branch) == expected


@pytest.mark.parametrize(
    ("block", "stem", "head"),
    [
        ("basic", "conv bn relu", ""),
        ("basic_bn_after_add", "conv bn relu", ""),
        ("basic_relu_before_add", "conv bn relu", ""),
        ("relu_preact_basic", "conv bn", "relu"),  # the first unit's ReLU completes the stem
        ("preact_basic", "conv", "bn relu"),  # the head applies the BN-ReLU no unit applied to the last sum
    ],
)
def test_stem_and_head_follow_the_first_and_last_units_pre_activation(block: str, stem: str, head: str) -> None:
    model = zoo.create_model("resnet20", block=block)

    def run_stem(x: torch.Tensor) -> torch.Tensor:
        for name in model.stem_names:
            x = getattr(model, name)(x)
        return x

    assert module_order(model, lambda: run_stem(torch.randn(2, 3, 32, 32))) == stem
    assert module_order(model.final_act, lambda: model.final_act(torch.randn(2, 64, 8, 8))) == head


def test_activation_after_addition_bounds_the_output() -> None:
    torch.manual_seed(0)
    x = torch.randn(4, 16, 8, 8)
    relu_before = zoo.create_model("resnet20", block="basic_relu_before_add").train().layer1[1]
    # A non-negative residual: the unit only ever adds to its input.
    assert (relu_before(x) - x >= 0).all()
    bn_after = zoo.create_model("resnet20", block="basic_bn_after_add").train().layer1[1]
    out = bn_after(x)
    assert (out >= 0).all() and out.gt(0).float().mean() < 0.75  # BN centred the sum, then a ReLU


def test_a_block_with_the_older_post_activation_attribute_keeps_its_meaning() -> None:
    class OlderPreAct(BasicBranch):  # a full pre-activation block as the contract first spelled it
        post_activation = False
        build, forward = PreActBasicBlock.build, PreActBasicBlock.forward

    assert unit_ordering(OlderPreAct) == ("bn_relu", "none")
    model = zoo.ResNet(block=OlderPreAct, depth=8)
    assert model.stem_names == ["conv1"] and isinstance(model.final_act, nn.Sequential)


@pytest.mark.parametrize("attributes", [{"expansion": 1}, {"expansion": 1, "after_addition": "gelu"}, {"expansion": 1, "after_addition": "relu", "pre_activation": "bn"}])
def test_registering_a_block_with_an_unknown_ordering_is_one_line_naming_the_choices(attributes: dict[str, Any]) -> None:
    cls = type("Odd", (nn.Module,), attributes)
    with pytest.raises(ValueError, match=r"relu, none, bn_relu|none, relu, bn_relu") as raised:
        zoo.register("test_odd_ordering")(cls)
    assert "\n" not in str(raised.value) and "test_odd_ordering" not in zoo.list_blocks()
