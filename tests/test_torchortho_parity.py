"""Parity with torchortho 0.1.2, the paper's own library (installed by the test extras)."""


import pytest
import torch

import orthoact

torchortho = pytest.importorskip("torchortho", reason="torchortho 0.1.2 not installed (pip install 'orthoact[torchortho]')")

CLASSES = {
    "hermite": "HermiteActivation",
    "fourier": "FourierActivation",
    "tropical": "TropicalActivation",
    "tropical_rational": "TropicalRationalActivation",
}


def perturb(module, seed):
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.2 * torch.randn_like(p))
    return module


@pytest.mark.parametrize("family", orthoact.FAMILIES)
@pytest.mark.parametrize("degree", [1, 3, 5, 8])
def test_default_init_matches_torchortho(family, degree):
    if family == "tropical_rational":
        pytest.skip("torchortho draws the tropical rational init at random; compared through the converter below")
    old = getattr(torchortho, CLASSES[family])(degree)
    converted = orthoact.torchortho_state_dict(old.state_dict(), family)
    ours = orthoact.create(family, degree=degree).state_dict()
    assert converted.keys() == ours.keys()
    for name in ours:
        torch.testing.assert_close(ours[name], converted[name], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("family", orthoact.FAMILIES)
@pytest.mark.parametrize("degree", [2, 5])
def test_same_outputs_for_same_parameters(family, degree):
    torch.manual_seed(degree)
    old = perturb(getattr(torchortho, CLASSES[family])(degree), seed=degree)
    new = orthoact.from_torchortho(old)
    assert isinstance(new, orthoact.create(family).__class__) and new.degree == degree
    x = torch.randn(4, 257)
    torch.testing.assert_close(new(x), old(x), rtol=2e-5, atol=2e-5)
    # and through a saved state_dict
    again = orthoact.from_torchortho(old.state_dict(), family=family)
    torch.testing.assert_close(again(x), new(x))


def test_converter_errors():
    with pytest.raises(ValueError, match="family is required"):
        orthoact.from_torchortho({"coefficients": torch.ones(3)})
    with pytest.raises(ValueError, match="family must be one of"):
        orthoact.torchortho_state_dict({}, "legendre")
    with pytest.raises(KeyError, match="lacks 'fundamental'"):
        orthoact.torchortho_state_dict({"coefficients": torch.ones(3)}, "fourier")
    with pytest.raises(TypeError, match="expected a torchortho activation module, got Linear"):
        orthoact.from_torchortho(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="no learnable clamp"):
        orthoact.from_torchortho(torchortho.HermiteActivation(3, clamp=True))
