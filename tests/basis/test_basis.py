import math

import numpy as np
import pytest
import torch

from orthoact.basis import (
    I0_2,
    fourier_series,
    fourier_series_derivative,
    gaussian_interval_moments,
    hermite_basis,
    hermite_series,
    hermite_series_derivative,
)

HE = [
    lambda x: torch.ones_like(x),
    lambda x: x,
    lambda x: x**2 - 1,
    lambda x: x**3 - 3 * x,
    lambda x: x**4 - 6 * x**2 + 3,
    lambda x: x**5 - 10 * x**3 + 15 * x,
]


def test_hermite_basis_matches_closed_forms():
    x = torch.linspace(-4, 4, 101, dtype=torch.float64)
    basis = hermite_basis(x, 5)
    for k, he in enumerate(HE):
        torch.testing.assert_close(basis[k], he(x) / math.factorial(k), rtol=1e-12, atol=1e-12)


def test_hermite_orthogonality_under_gaussian():
    nodes, weights = np.polynomial.hermite_e.hermegauss(30)  # weight exp(-x^2/2)
    x = torch.tensor(nodes)
    w = torch.tensor(weights) / math.sqrt(2 * math.pi)
    basis = torch.stack(hermite_basis(x, 8))
    gram = (basis[:, None, :] * basis[None, :, :] * w).sum(-1)
    expected = torch.diag(torch.tensor([1.0 / math.factorial(k) for k in range(9)], dtype=torch.float64))
    torch.testing.assert_close(gram, expected, atol=1e-12, rtol=0)


def test_hermite_derivative_identity():
    x = torch.linspace(-3, 3, 41, dtype=torch.float64, requires_grad=True)
    basis = hermite_basis(x, 7)
    for k in range(1, 8):
        (grad,) = torch.autograd.grad(basis[k].sum(), x, retain_graph=True)
        torch.testing.assert_close(grad, basis[k - 1].detach(), rtol=1e-12, atol=1e-12)


def test_hermite_series_and_derivative():
    x = torch.linspace(-3, 3, 41, dtype=torch.float64)
    a = [0.3, -1.2, 0.7, 2.0, -0.4]
    basis = hermite_basis(x, 4)
    torch.testing.assert_close(hermite_series(x, a), sum(c * h for c, h in zip(a, basis)))
    torch.testing.assert_close(hermite_series_derivative(x, a), sum(c * h for c, h in zip(a[1:], basis)))


def test_fourier_series_and_derivative():
    x = torch.linspace(-3, 3, 41, dtype=torch.float64, requires_grad=True)
    c, w, p = [0.5, -1.0, 2.0], [1.0, 2.5, 3.0], [0.1, 0.2, -0.3]
    y = fourier_series(x, 0.7, c, w, p)
    expected = 0.7 + sum(ck / math.factorial(k + 1) * torch.cos(wk * x - pk) for k, (ck, wk, pk) in enumerate(zip(c, w, p)))
    torch.testing.assert_close(y, expected)
    (grad,) = torch.autograd.grad(y.sum(), x)
    torch.testing.assert_close(fourier_series_derivative(x.detach(), c, w, p), grad)


def test_i0_2():
    assert I0_2 == pytest.approx(2.2795853023360673, rel=1e-15)


def test_gaussian_interval_moments_against_quadrature():
    lower = torch.tensor([-math.inf, -1.0, 0.3, -2.0], dtype=torch.float64)
    upper = torch.tensor([0.5, 2.0, math.inf, -2.0], dtype=torch.float64)
    m0, m1, m2 = gaussian_interval_moments(lower, upper)
    for i in range(4):
        lo, hi = max(lower[i].item(), -12.0), min(upper[i].item(), 12.0)
        t = np.linspace(lo, hi, 200001)
        pdf = np.exp(-t**2 / 2) / math.sqrt(2 * math.pi)
        for j, m in enumerate((m0, m1, m2)):
            assert m[i].item() == pytest.approx(float(np.sum(np.diff(t) * 0.5 * ((t**j * pdf)[1:] + (t**j * pdf)[:-1]))), abs=1e-8)
