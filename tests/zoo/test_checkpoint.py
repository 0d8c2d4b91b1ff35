"""zoo.save / zoo.load rebuild the same network with the same weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import zoo


def test_save_load_round_trip(tmp_path: Path) -> None:
    model = zoo.create_model("resnet20", shortcut="B", width_multiplier=2, num_classes=7)
    model.train()
    model(torch.randn(8, 3, 32, 32))  # move BN running statistics away from their init
    model.eval()
    path = tmp_path / "model.safetensors"
    zoo.save(model, path)
    loaded = zoo.load(path).eval()
    assert loaded.zoo_name == "resnet20"
    assert loaded.zoo_overrides == {"shortcut": "B", "width_multiplier": 2, "num_classes": 7}
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    assert not list(tmp_path.glob("*.tmp"))


def test_save_refuses_a_model_the_zoo_did_not_build(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="zoo.create_model"):
        zoo.save(torch.nn.Linear(2, 2), tmp_path / "x.safetensors")
    assert not list(tmp_path.iterdir())
