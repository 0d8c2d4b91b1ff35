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


def test_the_data_description_travels_with_the_weights(tmp_path: Path) -> None:
    model = zoo.create_model("resnet20", num_classes=3)
    model.zoo_data = {"input_size": [3, 32, 32], "interpolation": "bicubic", "crop_pct": 1.0, "crop_mode": "squash", "mean": [0.5, 0.4, 0.3], "std": [0.2, 0.2, 0.2], "class_names": ["a", "b", "c"]}
    zoo.save(model, tmp_path / "m.safetensors")
    loaded = zoo.load(tmp_path / "m.safetensors")
    assert loaded.zoo_data == model.zoo_data
    transform = zoo.transforms(loaded)
    from PIL import Image

    tensor = transform(Image.new("RGB", (50, 40), (255, 0, 128)))
    assert tensor.shape == (3, 32, 32)  # squashed to the input size
    assert tensor[:, 0, 0].tolist() == pytest.approx([(1.0 - 0.5) / 0.2, (0.0 - 0.4) / 0.2, (128 / 255 - 0.3) / 0.2], abs=1e-5)
    del model.zoo_data["std"]
    with pytest.raises(ValueError, match="zoo_data lacks std"):
        zoo.save(model, tmp_path / "other.safetensors")
    assert not (tmp_path / "other.safetensors").exists()


def test_a_file_that_is_not_saved_weights_is_one_value_error_naming_it(tmp_path: Path) -> None:
    from safetensors import safe_open
    from safetensors.torch import save_file

    not_weights = tmp_path / "photo.png"
    not_weights.write_bytes(b"\x89PNG not a safetensors header")
    with pytest.raises(ValueError, match=r"photo.png is not a safetensors file"):
        zoo.load(not_weights)
    saved = tmp_path / "resnet20.safetensors"
    zoo.save(zoo.create_model("resnet20"), saved)
    with safe_open(str(saved), framework="pt") as handle:
        metadata, tensors = handle.metadata(), {key: handle.get_tensor(key) for key in handle.keys() if key != "bn1.bias"}
    save_file(tensors, str(tmp_path / "short.safetensors"), metadata=metadata)
    with pytest.raises(ValueError, match=r'short.safetensors holds weights that do not fit resnet20 \{\}: .*Missing key\(s\) in state_dict: "bn1.bias"'):
        zoo.load(tmp_path / "short.safetensors")
