"""Probes on tiny synthetic data: finite gradients, exact lesions, shape changes never silently wrong."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pandas as pd
import pytest
import torch
import torch.nn as nn

import zoo
from leaderboards._probes import write_probe_page
from search.config import TrialConfig
from search.data import load_dataset
from search.probe import gradient_probe, lesion_probe, main
from search.train import train


@pytest.fixture(scope="module")
def synthetic() -> object:
    return load_dataset("synthetic", data_seed=0)


def test_gradient_norms_are_finite_and_positive_for_every_model(synthetic: object) -> None:
    models = ["plain20", "resnet20", "preresnet110", "plain110"]  # plain110: the deepest, without OOM
    table = gradient_probe(models, synthetic, batches=3, batch_size=8, seed=0)
    assert list(dict.fromkeys(table["model"])) == models
    assert len(table[table["model"] == "plain110"]) == 54
    assert all(math.isfinite(v) and v > 0 for v in table["grad_norm"])
    assert table["correlation"].between(-1, 1).all()
    assert set(table["family"]) == {"plain", "residual", "pre-activation"}


def test_one_lesioned_unit_equals_the_network_built_without_it() -> None:
    torch.manual_seed(0)
    for name in ("resnet20", "preresnet110"):
        model = zoo.create_model(name).eval()
        by_hand = copy.deepcopy(model)
        model.layer2[1].lesion()
        stage = list(by_hand.layer2)
        by_hand.layer2 = nn.Sequential(*(stage[:1] + stage[2:]))  # the same weights, one unit fewer
        x = torch.randn(4, 3, 32, 32)
        with torch.no_grad():
            assert torch.equal(model(x), by_hand(x)), name
        model.layer2[1].lesion(False)
        with torch.no_grad():
            assert not torch.equal(model(x), by_hand(x))


def test_plain_unit_that_changes_shape_is_refused_and_residual_one_reported_apart() -> None:
    plain = zoo.create_model("plain20")
    with pytest.raises(ValueError, match="changes shape"):
        plain.layer2[0].lesion()
    plain.layer2[1].lesion()  # same shape: becomes the identity
    assert plain.layer2[1].lesioned
    residual = zoo.create_model("resnet20")
    assert residual.layer2[0].changes_shape and not residual.layer2[1].changes_shape


def test_lesion_probe_on_a_trained_run_and_its_page(tmp_path: Path) -> None:
    for name in ("resnet20", "plain20"):
        # few validation images: the probe evaluates every lesion on all of them
        train(TrialConfig(model=name, data="synthetic", budget="smoke", recipe_overrides={"val_size": 64, "train_subset": 256}, threads=2), tmp_path / name, log=None)
    table = pd.concat([lesion_probe(tmp_path / name, draws=2, seed=0) for name in ("resnet20", "plain20")], ignore_index=True)
    plain = table[table["label"] == "plain-20"]
    refused = plain[plain["status"] != "ok"]
    assert len(refused) == 2 and refused["changes_shape"].all() and refused["accuracy"].isna().all()
    residual_single = table[(table["label"] == "ResNet-20 (A)") & (table["kind"] == "single")]
    assert len(residual_single) == 9 and residual_single["accuracy"].notna().all()
    assert sorted(table.loc[table["kind"] == "random", "k"].unique()) == [1, 2, 3, 4, 5]
    assert table["accuracy"].dropna().between(0, 1).all()
    # The page renders from the table alone.
    out = tmp_path / "probe"
    out.mkdir()
    table.to_csv(out / "lesion.csv", index=False)
    page = write_probe_page(out / "lesion.csv", out)
    text = page.path.read_text()
    assert "## Claims" in text and (out / "lesion-accuracy-vs-removed.png").exists()


def test_bad_probe_input_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["gradients", "--models", "resnet21", "--data", "synthetic", "--out", str(tmp_path / "g")]) == 2
    assert "unknown model 'resnet21'" in capsys.readouterr().err
    assert main(["lesion", "--checkpoint", str(tmp_path), "--out", str(tmp_path / "l")]) == 2
    assert "not a finished search.train run" in capsys.readouterr().err
    assert not (tmp_path / "g").exists() and not (tmp_path / "l").exists()


def test_gradient_probe_defaults_work_on_the_smallest_source(tmp_path: Path) -> None:
    # 8 batches of 64 would need 512 validation images; synthetic holds 400.
    assert main(["gradients", "--models", "resnet20,plain20", "--data", "synthetic", "--out", str(tmp_path)]) == 0
    table = pd.read_csv(tmp_path / "gradients.csv")
    assert set(table["batches"]) == {8} and set(table["batch_size"]) == {400 // 8}


def test_a_model_without_residual_units_is_refused_before_any_data_loads(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # cifar10 is not in the test cache: loading it would try to download. The check comes first.
    assert main(["gradients", "--models", "resnet20,cifar_vgg16_bn", "--data", "cifar10", "--out", str(tmp_path / "g")]) == 2
    assert "cifar_vgg16_bn is not a ResNet-family model" in capsys.readouterr().err
    assert not (tmp_path / "g").exists()
