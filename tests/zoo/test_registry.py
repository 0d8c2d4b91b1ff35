"""Names, wildcards, natural order, metadata cards and bad input."""

from __future__ import annotations

import re

import pytest
import torch
import torch.nn as nn

import zoo


def test_natural_sort_and_wildcards() -> None:
    resnets = zoo.list_models("resnet*")
    assert resnets.index("resnet20") < resnets.index("resnet110") < resnets.index("resnet1202")
    assert zoo.list_models("plain*") == ["plain20", "plain32", "plain44", "plain56", "plain110"]
    assert set(zoo.list_models("vgg*")) == {f"vgg{d}{s}" for d in (11, 13, 16, 19) for s in ("", "_bn")}
    assert zoo.list_models("nothing*") == []


def test_every_required_model_is_registered() -> None:
    required = [f"resnet{d}" for d in (20, 32, 44, 56, 110, 1202, 18, 34, 50, 101, 152, 164)]
    required += [f"plain{d}" for d in (20, 32, 44, 56, 110)]
    required += ["preresnet110", "preresnet164", "preresnet1001"]
    required += [f"{prefix}vgg{d}{s}" for prefix in ("", "cifar_") for d in (11, 13, 16, 19) for s in ("", "_bn")]
    assert set(required) <= set(zoo.list_models())
    assert {"basic", "bottleneck", "preact_basic", "preact_bottleneck"} <= set(zoo.list_blocks())


def test_cards_describe_the_defaults() -> None:
    card = zoo.model_card("preresnet164")
    assert (card.family, card.block, card.shortcut, card.depth, card.input_size) == ("cifar", "preact_bottleneck", "B", 164, 32)
    assert card.published.error == 5.46
    assert zoo.model_card("resnet152").published.macs == 11.3e9
    assert zoo.model_card("resnet18").family == "imagenet"
    for name in zoo.list_models():  # each card agrees with what the model really is
        model = zoo.model_card(name)
        assert model.input_size in (32, 224) and model.num_classes in (10, 1000)


def test_create_model_overrides_win() -> None:
    model = zoo.create_model("resnet56", shortcut="C", block="preact_basic", depth=110, num_classes=100)
    assert model.depth == 110 and model.shortcut_kind is zoo.ShortcutKind.PROJECT_ALWAYS
    assert model.block_names == ["preact_basic"] * 3
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 100)


def test_widths_and_width_multiplier() -> None:
    wide = zoo.create_model("resnet20", width_multiplier=4)
    assert wide.num_features == 256
    narrow = zoo.create_model("resnet20", widths=(8, 16, 32))
    assert narrow.num_features == 32


def test_zero_init_residual_starts_units_as_identity_branches() -> None:
    model = zoo.create_model("resnet20", zero_init_residual=True)
    assert all(float(unit.branch.bn2.weight.detach().abs().sum()) == 0 for unit in model.units())
    pre = zoo.create_model("preresnet164", zero_init_residual=True)
    assert all(float(unit.branch.conv3.weight.detach().abs().sum()) == 0 for unit in pre.units())


def test_per_stage_blocks() -> None:
    model = zoo.create_model("resnet20", block=["basic", "preact_basic", "basic"], shortcut="B")
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 10)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: zoo.create_model("resnet57"), "unknown model 'resnet57'"),
        (lambda: zoo.create_model("resnet20", block="basik"), "did you mean basic"),
        (lambda: zoo.create_model("resnet20", shortcut="D"), "unknown shortcut 'D'; valid: A, B, C, none"),
        (lambda: zoo.create_model("resnet20", depth=21), "6n+2"),
        (lambda: zoo.create_model("resnet164", depth=100), "9n+2"),
        (lambda: zoo.create_model("resnet50", depth=51), "valid: 50, 101, 152, 200"),
        (lambda: zoo.create_model("resnet20", dept=56), "did you mean depth"),
        (lambda: zoo.create_model("resnet20", base_width=32), "'base_width'"),
        (lambda: zoo.create_model("resnet50", stride_on="5x5"), "valid: 1x1, 3x3"),
        (lambda: zoo.create_model("vgg16", depth=17), "valid: 11, 13, 16, 19"),
        (lambda: zoo.complexity("nope"), f"unknown model 'nope'; {len(zoo.list_models())} known, python -m zoo list lists them"),  # too many for the line: where they are
    ],
)
def test_bad_input_names_valid_choices(call, message: str) -> None:
    with pytest.raises(ValueError) as error:
        call()
    assert message in str(error.value)


def test_duplicate_registration_is_refused() -> None:
    with pytest.raises(ValueError, match="already registered"):

        @zoo.register("basic")
        class Again(nn.Module):
            expansion = 1
            post_activation = True


def test_registration_requires_contract_attributes() -> None:
    with pytest.raises(ValueError, match="expansion"):

        @zoo.register("no_expansion_block")
        class Incomplete(nn.Module):
            post_activation = True


@pytest.mark.parametrize(
    ("name", "attributes", "message"),
    [
        ("", {"expansion": 1}, "block name '' is not a plain name"),
        ("two words", {"expansion": 1}, "block name 'two words' is not a plain name"),
        (5, {"expansion": 1}, "block name 5 is not a plain name"),
        ("zero_layers", {"expansion": 1, "layers_per_block": 0}, "block 'zero_layers': class attribute layers_per_block must be a whole number of at least 1, got 0"),  # once a ZeroDivisionError at the first build
        ("text_layers", {"expansion": 1, "layers_per_block": "2"}, "block 'text_layers': class attribute layers_per_block must be a whole number of at least 1, got '2'"),
        ("zero_expansion", {"expansion": 0}, "block 'zero_expansion': class attribute expansion must be a whole number of at least 1, got 0"),
    ],
)
def test_a_block_whose_name_or_sizes_cannot_work_is_refused_when_registered(name: object, attributes: dict, message: str) -> None:
    block = type("Block", (nn.Module,), {"after_addition": "relu", **attributes})
    with pytest.raises(ValueError, match=f"^{re.escape(message)}"):
        zoo.register(name)(block)  # type: ignore[arg-type]
    assert name not in zoo.list_blocks()
