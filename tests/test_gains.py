import math

import pytest
import torch

import orthoact
from conftest import VARIANTS, make

N_SAMPLES = 1_000_000


def monte_carlo_gains(module, seed=1234):
    """Sample estimates of E[F^2], E[F'^2] per group and their standard errors."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(N_SAMPLES // module.groups, module.groups, dtype=torch.float64, generator=g, requires_grad=True)
    module = module.double()
    module.channel_dim = -1
    y = module(x)
    (dy,) = torch.autograd.grad(y.sum(), x)
    f2, d2 = y.detach() ** 2, dy**2
    n = x.shape[0]
    return f2.mean(0), d2.mean(0), f2.std(0) / math.sqrt(n), d2.std(0) / math.sqrt(n)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("random", [False, True])
@pytest.mark.parametrize("groups", [1, 3])
def test_gains_match_monte_carlo(variant, random, groups):
    module = make(variant, groups=groups, random=random, seed=7, init=None)  # each family's default init
    fwd, bwd = module.gains()
    assert fwd.shape == bwd.shape == (groups,)
    mc_f, mc_b, se_f, se_b = monte_carlo_gains(module)
    # 5 standard errors, plus a tiny floor for exactly-constant quantities (tropical F' at init).
    assert torch.all((fwd - mc_f).abs() <= 5 * se_f + 1e-9), (fwd, mc_f, se_f)
    assert torch.all((bwd - mc_b).abs() <= 5 * se_b + 1e-9), (bwd, mc_b, se_b)


@pytest.mark.parametrize("degree", range(1, 11))
def test_hermite_paper_init_forward_gain_equals_backward(degree):
    fwd, bwd = orthoact.Hermite(degree, dtype=torch.float64).gains()
    expected = math.exp(-1) * sum(1 / math.factorial(j) for j in range(degree))  # e^-1 sum_{j<n} 1/j!
    assert fwd.item() == pytest.approx(expected, rel=1e-12)
    assert bwd.item() == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("degree", [1, 3, 8])
def test_hermite_unit_init_gains_are_one(degree):
    fwd, bwd = orthoact.Hermite(degree, init="unit", dtype=torch.float64).gains()
    assert fwd.item() == pytest.approx(1.0, rel=1e-12)
    assert bwd.item() == pytest.approx(1.0, rel=1e-12)


@pytest.mark.parametrize("degree", [1, 2, 5, 9])
def test_tropical_paper_init_closed_form(degree):
    fwd, bwd = orthoact.Tropical(degree, dtype=torch.float64).gains()
    n = degree
    assert fwd.item() == pytest.approx(1 + 4 / (n * math.sqrt(2 * math.pi)) + 2 / n**2, rel=1e-12)
    assert bwd.item() == pytest.approx(1.0, rel=1e-12)


def test_gains_are_differentiable():
    module = orthoact.Hermite(3, dtype=torch.float64)
    fwd, _ = module.gains()
    fwd.sum().backward()
    a = module.coefficients.detach()
    inv_fact = torch.tensor([1.0, 1.0, 0.5, 1 / 6], dtype=torch.float64)
    torch.testing.assert_close(module.coefficients.grad, 2 * a * inv_fact)


@pytest.mark.parametrize("family, degree", [("hermite", 100), ("hermite", 200), ("fourier", 21), ("fourier", 30),
                                            ("fourier", 64), ("fourier", 100), ("fourier", 200)])
def test_high_degree_gains_and_inits_do_not_overflow(family, degree):
    """Regression: k! as a Python int overflowed a float (Fourier from degree 21 in places)."""
    module = orthoact.create(family, degree=degree, dtype=torch.float64)
    fwd, bwd = module.gains()
    assert torch.isfinite(fwd).all() and torch.isfinite(bwd).all()
    if family == "hermite":  # e^-1 sum_{j<n} 1/j! -> 1
        assert fwd.item() == pytest.approx(1.0, rel=1e-12) and bwd.item() == pytest.approx(1.0, rel=1e-12)
