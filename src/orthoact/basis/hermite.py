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


def hermite_paper_coefficients(degree: int) -> list[float]:
    r"""The paper's (and torchortho 0.1.2's) init: :math:`a_k = e^{-1/2}` for :math:`k \ge 1`,
    :math:`a_0 = e^{-1/2}\sqrt{1 - 1/n!}`.

    Forward and backward gains are then equal, :math:`e^{-1}\sum_{j<n} 1/j!`.
    """
    scale = math.exp(-0.5)
    return [scale * math.sqrt(1.0 - 1.0 / math.factorial(degree))] + [scale] * degree


def hermite_unit_coefficients(degree: int) -> list[float]:
    r"""The paper's init rescaled so that both Gaussian gains are exactly 1:
    divide by :math:`\sqrt{\sum_{j<n} 1/j!}` instead of :math:`e^{1/2}`."""
    norm = math.sqrt(sum(1.0 / math.factorial(j) for j in range(degree)))
    return [math.sqrt(1.0 - 1.0 / math.factorial(degree)) / norm] + [1.0 / norm] * degree


def hermite_gains(coefficients: Tensor) -> tuple[Tensor, Tensor]:
    r"""Closed-form gains of Hermite series for :math:`x \sim \mathcal N(0, 1)`.

    Args:
        coefficients: tensor of shape ``(groups, degree + 1)``.

    Returns:
        ``(E[F^2], E[F'^2])``, each of shape ``(groups,)``, in float64.
    """
    a = coefficients.to(torch.float64)
    n = a.shape[-1] - 1
    inv_factorial = torch.tensor(
        [1.0 / math.factorial(k) for k in range(n + 1)], dtype=torch.float64, device=a.device
    )
    forward = (a.square() * inv_factorial).sum(-1)
    backward = (a[..., 1:].square() * inv_factorial[:n]).sum(-1)
    return forward, backward
