"""Same function, not only same size: torchvision weights give identical outputs in the zoo."""

from __future__ import annotations

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


def test_paper_block_differs_from_v15_in_function() -> None:
    # Same parameter shapes, so the v1.5 weights load, but the stride sits elsewhere.
    reference = torchvision.models.resnet50().eval()
    paper = zoo.create_model("resnet50").eval()
    paper.load_state_dict(zoo.convert_torchvision_state_dict(reference.state_dict()))
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert not torch.allclose(paper(x), reference(x))
