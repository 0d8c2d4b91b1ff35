"""Planning a search: the design each space gets (and why), grid x seeds, the MACs ceiling."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

import search
import zoo
from search.config import TrialConfig
from search.measure import calibrated_macs_per_second
from search.plan import GRID_LIMIT, choose_sampler, make_plan
from search.settings import DEFAULT_BASELINES, SearchSettings, search_recipe, validate
from search.spaces import space_family


@pytest.mark.parametrize(
    ("space", "sampler"),
    [("shortcuts", "grid"), ("depth", "grid"), ("blocks", "grid"), ("vgg", "grid"), ("bottleneck", "tpe")],
)
def test_every_builtin_space_gets_the_design_it_declares(space: str, sampler: str) -> None:
    chosen, why = choose_sampler(SearchSettings(space=space))
    assert chosen == sampler and "declared" in why


def test_bottleneck_is_sampled_with_early_stopping_not_a_192_trial_grid() -> None:
    plan = make_plan(SearchSettings(space="bottleneck", trials=12, baselines=False))
    assert plan.sampler == "tpe" and plan.total == 12 and plan.trials == []


def test_undeclared_space_is_a_grid_up_to_the_limit_then_sampled() -> None:
    @search.register_space("test_small")
    def small(trial: Any) -> dict[str, Any]:
        trial.suggest_categorical("shortcut", ["A", "B"])
        return {"model": "resnet20"}

    @search.register_space("test_large")
    def large(trial: Any) -> dict[str, Any]:
        trial.suggest_categorical("width_multiplier", list(range(1, 9)))
        trial.suggest_categorical("base_width", list(range(16, 16 + 9)))
        return {"model": "resnet20", "block": "bottleneck", "depth": 29}

    @search.register_space("test_continuous")
    def continuous(trial: Any) -> dict[str, Any]:
        trial.suggest_float("lr", 0.01, 0.5, log=True)
        return {"model": "resnet20"}

    assert choose_sampler(SearchSettings(space="test_small")) == ("grid", f"2 configurations (a grid up to {GRID_LIMIT})")
    assert choose_sampler(SearchSettings(space="test_large")) == ("tpe", f"72 configurations (more than {GRID_LIMIT}: sampled)")
    assert choose_sampler(SearchSettings(space="test_continuous"))[0] == "tpe"
    assert choose_sampler(SearchSettings(space="test_large", sampler="grid")) == ("grid", "as asked")


def test_grid_is_every_configuration_times_the_same_seeds_plus_the_baseline() -> None:
    plan = make_plan(SearchSettings(space="shortcuts", seeds=3))
    grid = [trial for trial in plan.trials if trial.baseline is None]
    assert len(grid) == 8 * 3 and plan.total == 8 * 3 + 3
    assert all("seed" not in trial.params for trial in plan.trials)  # the seed is a user attribute
    assert sorted({trial.seed for trial in grid}) == [0, 1, 2]
    assert [t.user_attrs() for t in plan.trials if t.baseline] == [{"seed": s, "baseline": DEFAULT_BASELINES["cifar"]} for s in range(3)]


def test_macs_ceiling_and_trial_cap_are_noted() -> None:
    plan = make_plan(SearchSettings(space="shortcuts", max_gmacs=0.05, trials=3, baselines=False))
    assert [trial.params["depth"] for trial in plan.trials] == [20, 20, 20]
    assert any("--max-gmacs 0.05: 4 of 8" in note for note in plan.notes)
    assert any("--trials 3 caps the grid of 4" in note for note in plan.notes)


def test_a_baseline_over_the_macs_ceiling_is_left_out_and_noted() -> None:
    plan = make_plan(SearchSettings(space="shortcuts", max_gmacs=0.05))
    assert all(trial.baseline is None for trial in plan.trials) and len(plan.trials) == 4
    assert f"baseline: {DEFAULT_BASELINES['cifar']} (0.313 GMACs) is over --max-gmacs 0.05, not trained" in plan.notes
    assert any(trial.baseline for trial in make_plan(SearchSettings(space="shortcuts", max_gmacs=0.5)).trials)


def test_named_baselines_train_with_the_spaces_recipe_and_timms_networks_fit_any_family() -> None:
    plan = make_plan(SearchSettings(space="shortcuts", seeds=2, trials=1, baselines=["timm:resnet10t", "cifar_vgg11"]))
    assert [(t.baseline, t.seed) for t in plan.trials if t.baseline] == [("timm:resnet10t", 0), ("timm:resnet10t", 1), ("cifar_vgg11", 0), ("cifar_vgg11", 1)]
    # A timm net trains as the CIFAR space's nets do (32 px, the CIFAR budget), which its command says.
    config = TrialConfig(model="timm:resnet10t", data="synthetic", budget="smoke", family=space_family("shortcuts"))
    assert config.recipe() == search_recipe(SearchSettings(space="shortcuts", budget="smoke")) and config.recipe().image_size == 32
    assert " --family cifar " in config.command("out") and " --family " not in TrialConfig(model="resnet20", data="synthetic", family="cifar").command("out")
    assert not any(t.baseline for t in make_plan(SearchSettings(space="shortcuts", baselines=[])).trials)
    with pytest.raises(ValueError, match="--baselines vgg16: one of the imagenet nets, but shortcuts trains cifar nets"):
        validate(SearchSettings(space="shortcuts", baselines=["vgg16"]))
    with pytest.raises(ValueError, match=r"unknown timm model 'resnt10t' \(did you mean resnet10t"):
        validate(SearchSettings(space="shortcuts", baselines=["timm:resnt10t"]))


def test_seeds_with_a_sampled_design_is_refused() -> None:
    with pytest.raises(ValueError, match="--seeds 2 applies to grid designs"):
        make_plan(SearchSettings(space="bottleneck", seeds=2))


def test_a_macs_ceiling_that_excludes_everything_is_refused() -> None:
    with pytest.raises(ValueError, match=r"--max-gmacs 0.001 excludes every configuration of shortcuts \(the cheapest costs 0.0406 GMACs\)"):
        make_plan(SearchSettings(space="shortcuts", max_gmacs=0.001))


def test_the_imagenet_grid_trains_its_own_vgg_and_prices_macs_at_the_trained_size() -> None:
    plan = make_plan(SearchSettings(space="imagenet", seeds=2))
    assert len(plan.trials) == 10 * 2 and not any(trial.baseline for trial in plan.trials), "VGG-16 is in the grid: no baseline beside it"
    assert search_recipe(SearchSettings(space="imagenet")).image_size == 176  # the quick budget's training crop
    at_176 = zoo.complexity("resnet152", input_size=176).gmacs
    capped = make_plan(SearchSettings(space="imagenet", max_gmacs=at_176 * 1.01))
    assert not any(t.params.get("model") == "vgg16" for t in capped.trials), "VGG-16 costs more than ResNet-152 at any size"
    assert any(t.params.get("model") == "resnet152" for t in capped.trials), "ResNet-152 is priced at 176 px, under the ceiling (it is not at 224)"
    assert zoo.complexity("resnet152").gmacs > at_176 * 1.01


def test_the_estimates_throughput_is_measured_once_per_machine_and_then_read_from_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESBENCH_DATA", str(tmp_path))
    measured = calibrated_macs_per_second(torch.device("cpu"), "fp32", 1)
    (cached,) = (tmp_path / "calibration").glob("*.json")
    assert measured > 0 and json.loads(cached.read_text())["key"].endswith(f"|cpu|fp32|1|{torch.__version__}")
    cached.write_text(json.dumps({"key": "planted", "macs_per_second": 123.0}))
    assert calibrated_macs_per_second(torch.device("cpu"), "fp32", 1) == 123.0  # read, not measured again
