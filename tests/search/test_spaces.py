"""Spaces: registration, listing, grid enumeration and the checks made at definition."""

from __future__ import annotations

from typing import Any

import pytest

import search
import zoo
from search import spaces


def test_builtin_spaces_are_listed_with_descriptions() -> None:
    assert {"shortcuts", "depth", "blocks", "preact", "bottleneck", "vgg", "very_deep", "imagenet"} <= set(search.list_spaces())
    assert [(c["model"], c["shortcut"]) for c in spaces.all_configs(spaces.get_space("very_deep"))] == [("resnet110", "A"), ("resnet1202", "A")]
    assert all(spaces.describe(name) for name in search.list_spaces())


def test_shortcuts_grid_is_every_shortcut_at_each_depth() -> None:
    configs = spaces.all_configs(spaces.get_space("shortcuts"))
    assert sorted((c["depth"], c["shortcut"]) for c in configs) == sorted((d, s) for d in (20, 56) for s in ("A", "B", "C", "none"))
    assert all(c["model"] == f"resnet{c['depth']}" for c in configs)


def test_preact_grid_is_every_ordering_of_the_sequel_at_both_of_its_depths() -> None:
    configs = spaces.all_configs(spaces.get_space("preact"))
    built = [zoo.describe(c["model"]) for c in configs]
    by_depth = {depth: [(a.block, a.shortcut) for a in built if a.depth == depth] for depth in (110, 164)}
    assert by_depth[110] == [(name, "A") for name in zoo.ORDERING_BLOCKS["basic"].values()]
    assert by_depth[164] == [(name, "B") for name in zoo.ORDERING_BLOCKS["bottleneck"].values()]
    assert len({a.label for a in built}) == 10  # every ordering is told apart on the page


def test_blocks_space_compares_designs_and_leaves_the_orderings_to_preact() -> None:
    blocks = {c["block"] for c in spaces.all_configs(spaces.get_space("blocks"))}
    assert {"basic", "bottleneck", "preact_basic", "preact_bottleneck"} <= blocks
    assert not blocks & {"basic_bn_after_add", "basic_relu_before_add", "relu_preact_basic"}


def test_grid_enumerates_conditional_branches_once() -> None:
    def conditional(trial: Any) -> dict[str, Any]:
        block = trial.suggest_categorical("block", ["basic", "bottleneck"])
        if block == "bottleneck":
            trial.suggest_categorical("base_width", [32, 64])
        return {"model": "resnet20"}

    points = spaces.grid_points(conditional)
    assert points == [{"block": "basic"}, {"block": "bottleneck", "base_width": 32}, {"block": "bottleneck", "base_width": 64}]


def test_continuous_space_is_not_a_grid() -> None:
    def continuous(trial: Any) -> dict[str, Any]:
        trial.suggest_float("lr", 0.01, 0.5, log=True)
        return {"model": "resnet20"}

    with pytest.raises(spaces.GridError, match="suggest_float"):
        spaces.grid_points(continuous)


def test_register_space_checks_at_definition() -> None:
    with pytest.raises(ValueError, match="without 'model'"):

        @search.register_space("test_no_model")
        def no_model(trial: Any) -> None:
            trial.suggest_categorical("depth", [20])

    with pytest.raises(ValueError, match="already registered"):

        @search.register_space("shortcuts")
        def again(trial: Any) -> dict[str, Any]:
            return {"model": "resnet20"}

    assert "test_no_model" not in search.list_spaces()


def test_a_key_both_model_option_and_recipe_field_is_refused() -> None:
    import torch.nn as nn

    import zoo

    @zoo.register("test_block_with_lr_option")
    class Clash(nn.Module):
        expansion = 1
        post_activation = True

        def __init__(self, in_channels: int, channels: int, stride: int = 1, *, lr: float = 0.0, **options: Any) -> None:
            super().__init__()
            self.conv = nn.Conv2d(in_channels, channels, 3, stride, 1)

        def forward(self, x: Any) -> Any:
            return self.conv(x)

    with pytest.raises(ValueError, match="both model options and recipe fields"):

        @search.register_space("test_clash")
        def clash(trial: Any) -> dict[str, Any]:
            trial.suggest_categorical("lr", [0.1])
            return {"model": "resnet20", "block": "test_block_with_lr_option"}


def test_imagenet_space_is_the_papers_tables_2_and_3() -> None:
    configs = spaces.all_configs(spaces.get_space("imagenet"))
    built = sorted((c["model"], zoo.describe(c["model"], **{k: v for k, v in c.items() if k != "model"}).shortcut) for c in configs)
    assert built == sorted([("resnet18", "none"), ("resnet18", "A"), ("resnet34", "none"), ("resnet34", "A"), ("resnet34", "B"), ("resnet34", "C"),
                            ("resnet50", "B"), ("resnet101", "B"), ("resnet152", "B"), ("vgg16", "-")])
    assert spaces.space_family("imagenet") == "imagenet" and spaces.space_family("shortcuts") == "cifar"


def test_a_space_naming_another_familys_model_is_refused() -> None:
    with pytest.raises(ValueError, match="declared family 'cifar' but names resnet50 \\(family 'imagenet'\\)"):
        @search.register_space("test_mixed")
        def mixed(trial: Any) -> dict[str, Any]:
            return {"model": trial.suggest_categorical("model", ["resnet20", "resnet50"])}
