"""Every registered model, built-in or added later, against its card: no test to write per model."""

from __future__ import annotations

import numpy
import pytest
import torch
import torch.nn.functional as F

import zoo

# The papers print 2-3 significant figures; the largest gap between a printed figure and the
# exact count is ResNet-1001's 10.2M vs 10.33M (1.2%), so 2% catches a wrong architecture
# (a missing stage or block changes counts by far more) without failing on rounding.
PRINTED_TOLERANCE = 0.02
CIFAR_MODELS = [name for name in zoo.list_models() if zoo.model_card(name).family == "cifar"]
DEEPEST = ("resnet1202", "preresnet1001")  # seconds each, even on the meta device: slow-marked


def models(names: list[str]) -> list[object]:
    return [pytest.param(name, marks=pytest.mark.slow) if name in DEEPEST else name for name in names]


@pytest.mark.parametrize("name", models(zoo.list_models()))
def test_card_matches_the_network_it_builds(name: str) -> None:
    card = zoo.model_card(name)
    built = zoo.describe(name)
    measured = zoo.complexity(name)
    assert (built.family, built.depth) == (card.family, card.depth)
    if card.kind == "resnet":
        assert (built.block, built.shortcut) == (card.block, card.shortcut)
    else:
        assert built.design == "vgg"
    assert measured.input_size == card.input_size
    if card.published.params is not None:
        assert measured.params == pytest.approx(card.published.params, rel=PRINTED_TOLERANCE)
    if card.published.macs is not None:
        assert measured.macs == pytest.approx(card.published.macs, rel=PRINTED_TOLERANCE)


@pytest.mark.parametrize("name", models(CIFAR_MODELS))
def test_every_cifar_model_trains_one_step(name: str) -> None:
    torch.manual_seed(0)
    model = zoo.create_model(name, num_classes=3)
    # ResNets take any size (8x8 keeps ResNet-1202 fast); a CIFAR VGG's five pools need 32x32.
    size = 32 if zoo.describe(name).design == "vgg" else 8
    logits = model(torch.randn(2, 3, size, size))
    assert logits.shape == (2, 3) and torch.isfinite(logits).all()
    F.cross_entropy(logits, torch.tensor([0, 2])).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize(
    ("name", "overrides", "label", "legend"),
    [
        ("resnet20", {}, "ResNet-20 (A)", "ResNet (basic)"),
        ("resnet56", {"shortcut": "none"}, "plain-56", "plain"),
        ("plain20", {}, "plain-20", "plain"),
        ("resnet20", {"depth": 56, "shortcut": "B"}, "ResNet-56 (B)", "ResNet (basic)"),
        ("preresnet110", {}, "pre-act ResNet-110 (A)", "pre-act ResNet"),
        ("resnet164", {}, "ResNet-164 (B) bottleneck", "ResNet (bottleneck)"),
        ("resnet20", {"depth": 29, "block": "bottleneck", "base_width": 32}, "ResNet-29 (A) bottleneck base_width=32", "ResNet (bottleneck)"),
        # No two nets share a label: a block per stage, a plain net of another ordering.
        ("resnet20", {"block": ["basic", "preact_basic", "basic"]}, "ResNet-20 (A) block=basic,preact_basic,basic", "ResNet (basic)"),
        ("resnet20", {"shortcut": "none", "block": "preact_basic"}, "plain-20 full pre-activation", "plain"),
        ("cifar_vgg16_bn", {}, "VGG-16-BN (CIFAR)", "VGG"),
        ("vgg19", {}, "VGG-19", "VGG"),
    ],
)
def test_one_description_of_every_network(name: str, overrides: dict, label: str, legend: str) -> None:
    described = zoo.describe(name, **overrides)
    assert (described.label, described.legend) == (label, legend)
    with torch.device("meta"):
        built = zoo.create_model(name, **overrides)
    assert zoo.describe(built) == described


@pytest.mark.parametrize(("name", "overrides"), [("resnet20", {}), ("resnet56", {"shortcut": "C"}), ("resnet164", {}), ("resnet50", {}), ("resnet152", {}), ("resnet20", {"width_multiplier": 4}), ("resnet20", {"depth": 29, "block": "bottleneck", "base_width": 32, "groups": 2})])
def test_size_estimates_are_close_to_the_exact_counts(name: str, overrides: dict) -> None:
    estimated = zoo.estimate(name, **overrides)
    assert estimated is not None
    assert estimated.params == pytest.approx(zoo.complexity(name, **overrides).params, rel=0.03)


def test_an_absurd_network_is_refused_before_it_is_built() -> None:
    with pytest.raises(ValueError, match=r"~[0-9,]+M parameters \(~[0-9,.]+ GiB of weights\); this machine has [0-9,.]+ GiB free") as error:
        zoo.create_model("resnet20", width_multiplier=1000)
    assert "\n" not in str(error.value)


def test_a_crafted_weights_file_is_refused_before_anything_is_built(tmp_path) -> None:
    import json

    from safetensors.torch import save_file

    path = tmp_path / "crafted.safetensors"
    save_file({"fc.bias": torch.zeros(10)}, str(path), metadata={"zoo_name": "resnet20", "zoo_overrides": json.dumps({"depth": 100004})})
    with pytest.raises(ValueError, match="describes resnet20 .* but holds 0.0M values: not a file zoo.save wrote"):
        zoo.load(path)


@pytest.mark.parametrize(
    ("name", "overrides", "message"),
    [
        ("resnet20", {"width_multiplier": 0}, r"widths and width_multiplier must be positive, got \(16, 32, 64\) x 0"),
        ("resnet20", {"in_chans": 0}, "in_chans must be positive, got 0"),
        ("resnet50", {"groups": 0}, "groups must be positive, got 0"),  # by name: once "base_width and groups ..., got 64 and 0"
        ("resnet50", {"base_width": 0}, "base_width must be positive, got 0"),
        ("resnet20", {"num_classes": 0}, "num_classes must be positive, got 0"),
        ("resnet20", {"expansion": -2}, "expansion must be positive, got -2"),
        ("resnet50", {"expansion": 0}, "expansion must be positive, got 0"),  # once silently the default 4
    ],
)
def test_a_size_option_that_is_not_positive_is_refused_by_the_estimate_and_the_build(name: str, overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        zoo.create_model(name, **overrides)
    if "expansion" not in overrides:  # the estimate counts any expansion; the build refuses it
        with pytest.raises(ValueError, match=message):  # search.train estimates a run's memory before it builds
            zoo.estimate(name, **overrides)


def test_a_block_list_that_does_not_cover_the_stages_is_refused_by_the_estimate_and_the_build() -> None:
    # The estimate once counted the two stages the list covered, without a word.
    message = r"block: got 2 blocks \(basic, preact_basic\) for 3 stages; valid: one block, or one per stage"
    for call in (zoo.create_model, zoo.estimate):
        with pytest.raises(ValueError, match=message):
            call("resnet20", block=["basic", "preact_basic"])


@pytest.mark.parametrize(
    ("name", "overrides", "message"),
    [
        ("resnet20", {"depth": 8.0}, "depth must be a whole number, got 8.0"),  # once a TypeError from inside range()
        ("resnet20", {"depth": "20"}, "depth must be a whole number, got '20'"),
        ("resnet20", {"width_multiplier": 1.5}, "width_multiplier must be a whole number, got 1.5"),  # the estimate truncated it to 1
        ("resnet20", {"num_classes": True}, "num_classes must be a whole number, got True"),
        ("resnet20", {"in_chans": 1.5}, "in_chans must be a whole number, got 1.5"),  # once "in_channels must be divisible by groups"
        ("resnet20", {"widths": (16.5, 32, 64)}, r"widths must be a sequence of whole numbers \(channels per stage\), got \(16.5, 32, 64\)"),
        ("resnet20", {"zero_init_residual": "yes"}, "zero_init_residual must be True or False, got 'yes'"),  # once trained as True
        ("resnet50", {"groups": 2.0}, "groups must be a whole number, got 2.0"),
        ("vgg16", {"num_classes": 10.0}, "num_classes must be a whole number, got 10.0"),
    ],
)
def test_an_option_of_the_wrong_type_is_one_line_naming_it(name: str, overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{message}$"):
        zoo.create_model(name, **overrides)
    if name.startswith("resnet"):  # search.train estimates a run's memory before it builds
        with pytest.raises(ValueError, match=f"^{message}$"):
            zoo.estimate(name, **overrides)


def test_whole_numbers_of_any_integer_type_and_the_default_expansion_are_taken() -> None:
    model = zoo.create_model("resnet50", depth=numpy.int64(101), expansion=None, widths=[64, 128, 256, 512])
    assert model.depth == 101 and model.num_features == 2048
