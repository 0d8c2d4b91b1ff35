"""Same function, not only same size: torchvision weights give identical outputs in the zoo."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision

import zoo


@pytest.mark.parametrize(
    ("name", "overrides"),
    [("resnet18", {}), ("resnet50", {"stride_on": "3x3"}), ("vgg16", {})],
)
def test_torchvision_state_dict_gives_identical_outputs(name: str, overrides: dict) -> None:
    torch.manual_seed(0)
    reference = getattr(torchvision.models, name)().eval()
    with torch.no_grad():  # non-trivial BN statistics, so the test also covers running stats
        for module in reference.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
    twin = zoo.create_model(name, **overrides).eval()
    twin.load_state_dict(zoo.convert_torchvision_state_dict(reference.state_dict()), strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(twin(x), reference(x), atol=1e-5, rtol=1e-4)


def test_paper_block_differs_from_v15_in_function_so_v15_weights_never_load_into_it() -> None:
    # Same parameter shapes, so the v1.5 weights would load, but the stride sits elsewhere.
    reference = torchvision.models.resnet50().eval()
    paper = zoo.create_model("resnet50").eval()
    paper.load_state_dict(zoo.convert_torchvision_state_dict(reference.state_dict()))  # forced, without the check
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert not torch.allclose(paper(x), reference(x))
    with pytest.raises(ValueError, match=r"v1.5 \(stride on the 3x3\); this model strides on the first 1x1"):
        zoo.convert_torchvision_state_dict(reference.state_dict(), paper)
    with pytest.raises(ValueError, match="stride_on='1x1' would load them into another network"):
        zoo.create_model("resnet50", weights=reference.state_dict(), stride_on="1x1")


def test_a_local_torchvision_checkpoint_builds_the_network_it_was_trained_as(tmp_path: Path) -> None:
    torch.manual_seed(0)
    reference = torchvision.models.resnet50().eval()
    torch.save(reference.state_dict(), tmp_path / "resnet50.pth")
    with pytest.warns(UserWarning, match="v1.5, so the model strides on the 3x3"):
        model = zoo.create_model("resnet50", weights=tmp_path / "resnet50.pth").eval()
    assert model.zoo_overrides["stride_on"] == "3x3"
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(model(x), reference(x), atol=1e-5, rtol=1e-4)
    resnet18 = torchvision.models.resnet18()  # basic blocks: no stride question, loaded as they are
    assert zoo.create_model("resnet18", weights=resnet18.state_dict()).zoo_overrides == {}
    with pytest.raises(ValueError, match="the weights do not fit resnet18: .*size mismatch"):
        zoo.create_model("resnet18", weights=resnet18.state_dict(), num_classes=10)
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot read weights .*junk.pth"):
        zoo.create_model("resnet18", weights=tmp_path / "junk.pth")
