r"""Normalised probabilists' Hermite basis (paper, Section 3.1).

.. math::
    h_k(x) = \frac{He_k(x)}{k!},\qquad h_0 = 1,\; h_1 = x,\;
    h_{k+1}(x) = \frac{x\,h_k(x) - h_{k-1}(x)}{k+1},\qquad h_k'(x) = h_{k-1}(x).

For :math:`x \sim \mathcal N(0, 1)` the basis is orthogonal, :math:`E[h_j h_k] = \delta_{jk}/k!`, so a
series :math:`F = \sum_k a_k h_k` has the closed-form gains
:math:`E[F^2] = \sum_k a_k^2/k!` and :math:`E[F'^2] = \sum_{k\ge1} a_k^2/(k-1)!`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from orthoact.basis._common import inv_factorial, inv_factorials, weighted_lstsq


def hermite_basis(x: Tensor, degree: int) -> list[Tensor]:
    """Return ``[h_0(x), ..., h_degree(x)]`` computed by the three-term recurrence."""
    basis = [torch.ones_like(x)]
    if degree >= 1:
        basis.append(x)
    for k in range(1, degree):
        basis.append((x * basis[k] - basis[k - 1]) / (k + 1))
    return basis


def hermite_series(x: Tensor, coefficients: Sequence[Tensor | float]) -> Tensor:
    r"""Evaluate :math:`\sum_k a_k h_k(x)`; each ``a_k`` is a number or a tensor broadcastable to ``x``.

    The recurrence keeps only two basis values alive, so memory stays at a few copies of ``x``.
    """
    degree = len(coefficients) - 1
    h_prev, h = torch.ones_like(x), x
    out = coefficients[0] * h_prev
    if degree >= 1:
        out = out + coefficients[1] * h
    for k in range(1, degree):
        h_prev, h = h, (x * h - h_prev) / (k + 1)
        out = out + coefficients[k + 1] * h
    return out


def hermite_series_derivative(x: Tensor, coefficients: Sequence[Tensor | float]) -> Tensor:
    r""":math:`F'(x) = \sum_{k\ge1} a_k h_{k-1}(x)`, i.e. the series with coefficients shifted by one."""
    if len(coefficients) == 1:
        return torch.zeros_like(x) * coefficients[0]
    return hermite_series(x, list(coefficients[1:]))


def hermite_monomial_matrix(degree: int, dtype=torch.float64) -> Tensor:
    r"""``C`` with :math:`h_k(x) = \sum_j C_{kj} x^j`, built from the recurrence on coefficient
    vectors (exact up to float64 rounding of each entry; no linear solve, so no conditioning loss at
    high degree)."""
    c = torch.zeros(degree + 1, degree + 1, dtype=torch.float64)
    c[0, 0] = 1.0
    if degree >= 1:
        c[1, 1] = 1.0
    for k in range(1, degree):
        c[k + 1, 1:] = c[k, :-1] / (k + 1)
        c[k + 1] -= c[k - 1] / (k + 1)
    return c.to(dtype)


def hermite_monomial_coefficients(coefficients: Tensor) -> Tensor:
    """Monomial coefficients ``m`` with ``sum_k a_k h_k(x) = sum_j m_j x^j``; ``(..., n+1)`` in float64."""
    a = coefficients.to(torch.float64)
    return a @ hermite_monomial_matrix(a.shape[-1] - 1).to(a.device)


def hermite_paper_coefficients(degree: int) -> list[float]:
    r"""The paper's (and torchortho 0.1.2's) init: :math:`a_k = e^{-1/2}` for :math:`k \ge 1`,
    :math:`a_0 = e^{-1/2}\sqrt{1 - 1/n!}`.

    Forward and backward gains are then equal, :math:`e^{-1}\sum_{j<n} 1/j!`.
    """
    scale = math.exp(-0.5)
    return [scale * math.sqrt(1.0 - inv_factorial(degree))] + [scale] * degree


def hermite_unit_coefficients(degree: int) -> list[float]:
    r"""The paper's init rescaled so that both Gaussian gains are exactly 1:
    divide by :math:`\sqrt{\sum_{j<n} 1/j!}` instead of :math:`e^{1/2}`."""
    norm = math.sqrt(math.fsum(inv_factorial(j) for j in range(degree)))
    return [math.sqrt(1.0 - inv_factorial(degree)) / norm] + [1.0 / norm] * degree


def hermite_gains(coefficients: Tensor) -> tuple[Tensor, Tensor]:
    r"""Closed-form gains of Hermite series for :math:`x \sim \mathcal N(0, 1)`.

    Args:
        coefficients: tensor of shape ``(groups, degree + 1)``.

    Returns:
        ``(E[F^2], E[F'^2])``, each of shape ``(groups,)``, in float64.
    """
    a = coefficients.to(torch.float64)
    n = a.shape[-1] - 1
    inv_factorial_ = inv_factorials(0, n, device=a.device)
    forward = (a.square() * inv_factorial_).sum(-1)
    backward = (a[..., 1:].square() * inv_factorial_[:n]).sum(-1)
    return forward, backward


def hermite_gains_at(coefficients: Tensor, variance: float) -> tuple[float, float]:
    """Gains of group 0 for x ~ N(0, variance) by Gauss-Hermite quadrature (exact for polynomials)."""
    import numpy as np

    a = coefficients.detach().to(torch.float64)[0]
    n = a.numel() - 1
    nodes, weights = np.polynomial.hermite_e.hermegauss(n + 2)  # exact up to degree 2n + 3
    x = torch.tensor(nodes * math.sqrt(variance), dtype=torch.float64)
    w = torch.tensor(weights / math.sqrt(2 * math.pi), dtype=torch.float64)
    coefficients_ = list(a)
    y = hermite_series(x, coefficients_)
    dy = hermite_series_derivative(x, coefficients_)
    return (w * y**2).sum().item(), (w * dy**2).sum().item()


def hermite_fit_start(x, w, f, df, degree: int, match_derivative: bool) -> dict[str, Tensor]:
    """Least squares on value rows ``F(x_i) ~ f(x_i)`` and derivative rows ``F'(x_i) ~ f'(x_i)``:
    the model is linear in the coefficients, so this is the exact optimum."""
    basis = torch.stack(hermite_basis(x, degree), dim=-1)  # (m, n+1)
    rows, rhs, weights = [basis], [f], [w]
    if match_derivative:
        rows.append(torch.cat([torch.zeros_like(x).unsqueeze(-1), basis[:, :-1]], dim=-1))  # h_k' = h_{k-1}
        rhs.append(df)
        weights.append(w)
    return {"coefficients": weighted_lstsq(torch.cat(rows), torch.cat(rhs), torch.cat(weights))}
