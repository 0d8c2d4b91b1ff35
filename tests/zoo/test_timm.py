"""zoo models inside timm (``import zoo.timm``) and timm's model interface on every zoo network."""

from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch
from timm.data import resolve_data_config

import zoo
import zoo.timm  # noqa: F401  (registers the resbench_ entry points)


def test_timm_builds_the_same_network_as_the_zoo() -> None:
    torch.manual_seed(0)
    through_timm = timm.create_model("resbench_resnet56").eval()
    torch.manual_seed(0)
    direct = zoo.create_model("resnet56").eval()
    assert through_timm.state_dict().keys() == direct.state_dict().keys()
    assert all(torch.equal(a, b) for a, b in zip(through_timm.state_dict().values(), direct.state_dict().values()))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(through_timm(x), direct(x))
    assert timm.create_model("resbench_resnet20", shortcut="B", num_classes=100).num_classes == 100  # zoo overrides pass through


def test_timms_own_names_are_not_shadowed_and_its_keywords_are_honoured() -> None:
    assert type(timm.create_model("resnet50")).__module__.startswith("timm.")
    assert set(timm.list_models("resbench_*")) == {f"resbench_{name}" for name in zoo.list_models()}
    with pytest.raises(ValueError, match="no pretrained weights to download"):
        timm.create_model("resbench_resnet20", pretrained=True)
    with pytest.raises(ValueError, match="drop_rate: .* only 0 is accepted"):
        timm.create_model("resbench_resnet20", drop_rate=0.2)
    model = timm.create_model("resbench_resnet20", pretrained_cfg_overlay={"input_size": (3, 64, 64), "mean": (0.5, 0.5, 0.5)})
    config = resolve_data_config(model=model)
    assert config["input_size"] == (3, 64, 64) and config["mean"] == (0.5, 0.5, 0.5)


@pytest.mark.parametrize(("name", "features"), [("resnet20", 64), ("resnet50", 2048), ("cifar_vgg11_bn", 512), ("vgg11", 4096)])
def test_every_network_has_timms_model_interface(name: str, features: int) -> None:
    model = zoo.create_model(name).eval()
    size = model.default_input_size
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        logits = model(x)
        feature_map = model.forward_features(x)
        assert torch.equal(model.forward_head(feature_map), logits)
        assert model.forward_head(feature_map, pre_logits=True).shape == (2, features)
    assert model.num_features == features and model.get_classifier().out_features == model.num_classes
    config = resolve_data_config(model=model)
    assert config["input_size"] == (3, size, size)
    model.reset_classifier(7)
    assert model(x).shape == (2, 7) and model.num_classes == 7
    model.reset_classifier(0)  # timm's way of asking for pooled features
    assert model(x).shape == (2, features)


def test_timm_networks_are_zoo_names_built_counted_described_and_saved_as_the_zoos(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = zoo.create_model("timm:resnet10t", num_classes=10).eval()
    torch.manual_seed(0)
    direct = timm.create_model("resnet10t", num_classes=10).eval()  # timm's own network, no pretrained weights
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), direct.state_dict().values()))
    # Counted the zoo's way at the data's size, and described by name (its insides are timm's).
    counted = zoo.complexity("timm:resnet10t", input_size=(3, 32, 32), num_classes=10)
    assert counted.params == sum(p.numel() for p in direct.parameters()) and 0 < counted.macs < zoo.complexity("timm:resnet10t").macs
    described = zoo.describe(model)
    assert (described.design, described.label, described.depth, described.legend) == ("timm", "resnet10t (timm)", None, "timm")
    card = zoo.model_card("timm:resnet10t")
    assert (card.kind, card.input_size) == ("timm", timm.get_pretrained_cfg("resnet10t").input_size[-1])
    assert "timm:resnet10t" not in zoo.list_models()  # named on demand, never listed among the zoo's own
    zoo.save(model, tmp_path / "model.safetensors")
    loaded = zoo.load(tmp_path / "model.safetensors").eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    with pytest.raises(ValueError, match=r"unknown timm model 'resnt10t' \(did you mean resnet10t"):
        zoo.create_model("timm:resnt10t")
    with pytest.raises(ValueError, match=r"unknown option for model 'timm:resnet10t': 'shortcut'; valid: in_chans, num_classes"):
        zoo.create_model("timm:resnet10t", shortcut="B")
