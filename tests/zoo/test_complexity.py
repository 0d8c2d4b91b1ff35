"""Parameters and MACs against REFERENCE.md and against torchvision/timm models built here."""

from __future__ import annotations

import pytest
import timm
import torch
import torchvision

import zoo

# REFERENCE.md section 1 (torchvision exact counts; CIFAR option A exact counts) and section 2.
EXACT_PARAMS = {
    "resnet20": 269_722,
    "resnet32": 464_154,
    "resnet44": 658_586,
    "resnet56": 853_018,
    "resnet110": 1_727_962,
    "resnet1202": 19_421_274,
    "preresnet164": 1_703_258,
    "preresnet1001": 10_327_706,
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "resnet152": 60_192_808,
    "vgg11": 132_863_336,
    "vgg13": 133_047_848,
    "vgg16": 138_357_544,
    "vgg19": 143_667_240,
    "vgg11_bn": 132_868_840,
    "vgg13_bn": 133_053_736,
    "vgg16_bn": 138_365_992,
    "vgg19_bn": 143_678_248,
}
PAPER_GMACS = {"resnet18": 1.8, "resnet34": 3.6, "resnet50": 3.8, "resnet101": 7.6, "resnet152": 11.3}
TORCHVISION_V15_GMACS = {"resnet50": 4.089, "resnet101": 7.801, "resnet152": 11.514}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in ("resnet1202", "preresnet1001") else n for n in sorted(EXACT_PARAMS)])
def test_params_match_reference(name: str) -> None:
    assert zoo.complexity(name).params == EXACT_PARAMS[name]


@pytest.mark.parametrize("name", ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "vgg11", "vgg16_bn", "vgg19"])
def test_params_match_torchvision_built_here(name: str) -> None:
    with torch.device("meta"):
        reference = getattr(torchvision.models, name)()
    assert zoo.complexity(name).params == sum(p.numel() for p in reference.parameters())


@pytest.mark.parametrize(
    ("overrides", "timm_name"),
    [
        (dict(groups=32, base_width=4, stride_on="3x3"), "resnext50_32x4d"),
        (dict(base_width=128, stride_on="3x3"), "wide_resnet50_2"),
        (dict(stride_on="3x3"), "resnet50"),
    ],
)
def test_bottleneck_width_options_match_timm(overrides: dict, timm_name: str) -> None:
    with torch.device("meta"):
        reference = timm.create_model(timm_name)
    ours = zoo.complexity("resnet50", **overrides)
    assert ours.params == sum(p.numel() for p in reference.parameters())


@pytest.mark.slow  # ResNet-1001 variants, counted on the meta device
def test_preactivation_shortcut_variants_match_reference() -> None:
    # REFERENCE.md section 2: zero-pad / bare 1x1 conv / 1x1 conv + BN on a shape change.
    assert zoo.complexity("preresnet164", shortcut="A").params == 1_661_274
    assert zoo.complexity("preresnet1001", shortcut="A").params == 10_285_722
    assert zoo.complexity("preresnet164", shortcut="B").params == 1_703_258
    # A post-activation bottleneck net projects with conv + BN: 2 x (64 + 128 + 256) more.
    assert zoo.complexity("resnet164").params == 1_703_258 + 2 * (64 + 128 + 256)


@pytest.mark.parametrize("name", sorted(PAPER_GMACS))
def test_paper_block_macs_within_table1_rounding(name: str) -> None:
    assert abs(zoo.complexity(name).gmacs - PAPER_GMACS[name]) <= 0.1


@pytest.mark.parametrize("name", sorted(TORCHVISION_V15_GMACS))
def test_v15_macs_match_torchvision(name: str) -> None:
    measured = zoo.complexity(name, stride_on="3x3").gmacs
    assert measured == pytest.approx(TORCHVISION_V15_GMACS[name], rel=0.005)
    # And the paper's block really is cheaper: the stride on the 1x1 shrinks the 3x3's input.
    assert zoo.complexity(name).gmacs < measured


def test_vgg_macs_with_fc() -> None:
    assert zoo.complexity("vgg16").gmacs == pytest.approx(15.470, abs=0.001)
    assert zoo.complexity("vgg19").gmacs == pytest.approx(19.632, abs=0.001)


@pytest.mark.slow  # counts ResNet-1202
def test_cifar_macs_match_reference() -> None:
    for name, mmacs in {"resnet20": 40.6, "resnet56": 125.5, "resnet110": 252.9, "resnet1202": 2829}.items():
        assert zoo.complexity(name).macs / 1e6 == pytest.approx(mmacs, abs=0.1 if mmacs < 1000 else 1)


def test_paper_complexity_claims() -> None:
    resnet152, vgg16, vgg19 = (zoo.complexity(n).macs for n in ("resnet152", "vgg16", "vgg19"))
    assert resnet152 < vgg16 < vgg19
    # "the 34-layer baseline has 3.6 billion FLOPs, only 18% of VGG-19"
    assert zoo.complexity("resnet34").macs / vgg19 == pytest.approx(0.18, abs=0.01)


@pytest.mark.parametrize("name", ["resnet20", "resnet56", "preresnet110", "resnet34"])
def test_parameters_grow_from_a_to_b_to_c(name: str) -> None:
    a, b, c = (zoo.complexity(name, shortcut=s).params for s in ("A", "B", "C"))
    plain = zoo.complexity(name, shortcut="none").params
    assert plain == a, "option A must add no parameters"
    assert a < b < c


def test_built_model_matches_count_by_name() -> None:
    model = zoo.create_model("resnet20", shortcut="C", width_multiplier=2)
    by_name = zoo.complexity("resnet20", shortcut="C", width_multiplier=2)
    assert zoo.complexity(model) == by_name
    assert by_name.params == sum(p.numel() for p in model.parameters())


def test_input_size_changes_macs_not_params() -> None:
    small, large = zoo.complexity("resnet18", input_size=112), zoo.complexity("resnet18")
    assert small.params == large.params and small.macs < large.macs


def test_input_size_may_be_timms_channels_height_width_tuple() -> None:
    square = zoo.complexity("resnet18", input_size=160)
    assert zoo.complexity("resnet18", input_size=(3, 160, 160)).macs == square.macs
    assert zoo.complexity("resnet18", input_size=(160, 160)).macs == square.macs
    wide = zoo.complexity("resnet18", input_size=(3, 160, 320))
    assert wide.macs > square.macs and wide.input_size == (3, 160, 320)
    with pytest.raises(ValueError, match=r"has 1 channels; the model takes 3"):
        zoo.complexity("resnet18", input_size=(1, 160, 160))
    with pytest.raises(ValueError, match=r"positive int, \(H, W\) or \(C, H, W\)"):
        zoo.complexity("resnet18", input_size=(0, 160))
    with pytest.raises(ValueError, match=r"positive int, \(H, W\) or \(C, H, W\), got 0"):
        zoo.complexity("resnet18", input_size=0)  # once read as "the model's own size"


def test_a_size_too_small_for_the_net_is_one_line_naming_it() -> None:
    with pytest.raises(ValueError, match=r"^cifar_vgg16 cannot take 8x8 inputs \(.*\); valid: its input size \(32\) or another it can take$"):
        zoo.complexity("cifar_vgg16", input_size=8)  # five 2x2 max-pools: 32 is the least
