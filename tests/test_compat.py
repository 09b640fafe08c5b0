"""Parity with the peer libraries: torchortho 0.1.2 (the paper's own library, installed by the test
extras) and PAU's rational-activations 0.2.0 (installed by the Makefile with --no-deps: it pins
torch 1.7.1 but its PyTorch functions run on current torch)."""

import importlib.util
import re

import pytest
import torch

import orthoact
from conftest import make

HAS_TORCHORTHO = importlib.util.find_spec("torchortho") is not None
HAS_RATIONAL = importlib.util.find_spec("rational") is not None
needs_torchortho = pytest.mark.skipif(not HAS_TORCHORTHO, reason="torchortho 0.1.2 not installed (pip install 'orthoact[torchortho]')")
needs_rational = pytest.mark.skipif(not HAS_RATIONAL, reason="rational-activations 0.2.0 not installed "
                                    "(pip install --no-deps rational-activations==0.2.0)")
if HAS_TORCHORTHO:
    import torchortho

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


@needs_torchortho
@pytest.mark.parametrize("family", CLASSES)
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


@needs_torchortho
@pytest.mark.parametrize("family", CLASSES)
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


@needs_torchortho
def test_converter_errors():
    with pytest.raises(ValueError, match="family is required"):
        orthoact.from_torchortho({"coefficients": torch.ones(3)})
    with pytest.raises(ValueError, match="family must be one of"):
        orthoact.torchortho_state_dict({}, "legendre")
    with pytest.raises(KeyError, match="lacks 'fundamental'"):
        orthoact.torchortho_state_dict({"coefficients": torch.ones(3)}, "fourier")
    with pytest.raises(TypeError, match="expected a torchortho activation module, got Linear"):
        orthoact.from_torchortho(torch.nn.Linear(2, 2))
    clamped = torchortho.HermiteActivation(3, clamp=True)
    with pytest.raises(ValueError, match="not a LearnableClamp's"):
        orthoact.from_torchortho({**clamped.state_dict(), "clamp.extra": torch.ones(1)}, family="hermite")


@needs_torchortho
@pytest.mark.parametrize("degree", [3, 8])
@pytest.mark.parametrize("backend", ["reference", "fused"])
def test_learnable_clamp_matches_torchortho(degree, backend):
    """HermiteActivation(clamp=True), torchortho's notebook setting: same values and gradients (x, the
    coefficients and the clamp limit), from the module and from its state dict."""
    old = perturb(torchortho.HermiteActivation(degree, clamp=True), seed=degree)
    new = orthoact.from_torchortho(old, backend=backend)
    assert new.inputs.clamp and new.clamp_limit.shape == (1, 1)
    again = orthoact.from_torchortho(old.state_dict(), family="hermite")
    torch.testing.assert_close(again.clamp_limit, new.clamp_limit)
    x = 3 * torch.randn(4, 257)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    dy = torch.randn_like(x)
    ours = new(xa)
    (ours * dy).sum().backward()
    theirs = old(xb)
    (theirs * dy).sum().backward()
    torch.testing.assert_close(ours, theirs, rtol=2e-5, atol=2e-5)
    torch.testing.assert_close(xa.grad, xb.grad, rtol=2e-5, atol=2e-5)
    torch.testing.assert_close(new.coefficients.grad.flatten(), old.coefficients.grad.flatten(), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(new.clamp_limit.grad.flatten(), old.clamp.lim_val.grad.flatten(), rtol=1e-4, atol=1e-4)


@needs_torchortho
def test_float64_torchortho_state_dict_gives_a_correct_float64_module():
    """Regression: a float64 state dict made float64 parameters, which the fused path read as floats."""
    old = perturb(torchortho.HermiteActivation(3), seed=0).double()
    new = orthoact.from_torchortho(old.state_dict(), family="hermite")
    assert new.coefficients.dtype == torch.float64
    x = torch.randn(64)  # float32 input, float64 parameters
    torch.testing.assert_close(new(x).double(), old(x.double()), rtol=1e-6, atol=1e-6)


def _rational_activations(version, degrees=(5, 4), seed=0):
    from rational.torch import Rational as PauRational

    torch.manual_seed(seed)
    pau = PauRational(approx_func="gelu", degrees=degrees, version=version, cuda=False)
    with torch.no_grad():  # move away from the shipped init so every coefficient matters
        pau.numerator.add_(0.05 * torch.randn_like(pau.numerator))
        pau.denominator.add_(0.05 * torch.randn_like(pau.denominator))
    return pau


@needs_rational
@pytest.mark.parametrize("version", ["A", "B"])
@pytest.mark.parametrize("backend", ["reference", "fused"])
def test_rational_activations_parity(version, backend):
    """Same values and gradients as rational-activations 0.2.0's PyTorch functions."""
    pau = _rational_activations(version)
    ours = orthoact.from_rational_activations(pau, backend=backend)
    assert (ours.degree, ours.options["version"]) == ((5, 4), version)
    x = torch.linspace(-4, 4, 1001).reshape(7, 143)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    ya, yb = pau(xa), ours(xb)
    torch.testing.assert_close(yb, ya, rtol=1e-5, atol=1e-6)
    g = torch.randn_like(x)
    ya.backward(g)
    yb.backward(g)
    torch.testing.assert_close(xb.grad, xa.grad, rtol=1e-4, atol=1e-4)  # both float32, summed in other orders
    torch.testing.assert_close(ours.numerator.grad[0], pau.numerator.grad, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(ours.denominator.grad[0], pau.denominator.grad, rtol=1e-4, atol=1e-4)
    # and through its state_dict
    again = orthoact.from_rational_activations(pau.state_dict(), version=version)
    torch.testing.assert_close(again(x), yb.detach())


@needs_rational
def test_our_gelu_fit_is_as_close_to_gelu_as_pau_s_shipped_init():
    from rational.torch import Rational as PauRational

    x = torch.linspace(-3, 3, 2001, dtype=torch.float64)
    gelu = torch.nn.functional.gelu(x)
    pau = PauRational(approx_func="gelu", degrees=(5, 4), version="A", cuda=False)
    theirs = orthoact.from_rational_activations(pau, dtype=torch.float64)
    ours = orthoact.Rational(5, 4, dtype=torch.float64)
    assert (ours(x) - gelu).abs().max() <= (theirs(x) - gelu).abs().max()


def test_rational_converter_errors():
    with pytest.raises(ValueError, match=re.escape("version must be 'A' or 'B'")):
        orthoact.from_rational_activations({"numerator": torch.ones(6), "denominator": torch.ones(4)})
    with pytest.raises(KeyError, match="lacks \\['denominator'\\]"):
        orthoact.from_rational_activations({"numerator": torch.ones(6)}, version="A")
    with pytest.raises(TypeError, match="expected a rational-activations Rational module"):
        orthoact.from_rational_activations(3)
    module = make("rational", dtype=torch.float32)
    round_trip = orthoact.from_rational_activations({"numerator": module.numerator[0], "denominator": module.denominator[0]},
                                                    version="A")
    x = torch.randn(50)
    torch.testing.assert_close(round_trip(x), module(x))
