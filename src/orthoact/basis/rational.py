r"""Rational (Padé) activations with the "safe" denominators of PAU (Molina et al., "Padé Activation
Units") and KAT (Yang & Wang, "Kolmogorov-Arnold Transformer", group-rational):

.. math::
    F(x) = \frac{P(x)}{Q(x)},\qquad P(x) = \sum_{i=0}^{m} a_i x^i,\qquad
    Q_A(x) = 1 + \sum_{j=1}^{n} |b_j x^j|,\qquad Q_B(x) = 1 + \Big|\sum_{j=1}^{n} b_j x^j\Big|.

Both denominators are at least 1, so F has no pole. Version ``"A"`` is PAU's default, ``"B"`` KAT's.
The Gaussian gains have no closed form; :func:`rational_gains` integrates numerically (trapezoid on
a fine grid over :math:`[-12, 12]`, error below 1e-6 for the usual coefficients).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from orthoact.basis._common import weighted_lstsq

VERSIONS = ("A", "B")
FIT_DOMAIN = (-3.0, 3.0)  # as PAU's and KAT's fitted inits


def rational_value(x: Tensor, numerator, denominator, version: str = "A") -> Tensor:
    """Evaluate ``P(x) / Q(x)``; each coefficient is a number or a tensor broadcastable to ``x``."""
    num = numerator[0] + torch.zeros_like(x)
    den = torch.zeros_like(x)
    xp = torch.ones_like(x)
    for j in range(1, max(len(numerator) - 1, len(denominator)) + 1):
        xp = xp * x
        if j < len(numerator):
            num = num + numerator[j] * xp
        if j <= len(denominator):
            term = denominator[j - 1] * xp
            den = den + (term.abs() if version == "A" else term)
    return num / (1 + (den if version == "A" else den.abs()))


def rational_derivative(x: Tensor, numerator, denominator, version: str = "A") -> Tensor:
    r""":math:`F' = (P' - F Q') / Q` with :math:`Q'` of the chosen version (``sgn(0) = 0``)."""
    num = numerator[0] + torch.zeros_like(x)
    dnum = torch.zeros_like(x)
    den = torch.zeros_like(x)
    dden = torch.zeros_like(x)
    xp = torch.ones_like(x)
    for j in range(1, max(len(numerator) - 1, len(denominator)) + 1):
        prev, xp = xp, xp * x
        if j < len(numerator):
            num = num + numerator[j] * xp
            dnum = dnum + j * numerator[j] * prev
        if j <= len(denominator):
            b = denominator[j - 1]
            term = b * xp
            if version == "A":
                den = den + term.abs()
                dden = dden + torch.sign(term) * j * b * prev
            else:
                den = den + term
                dden = dden + j * b * prev
    if version == "B":
        dden = torch.sign(den) * dden
        den = den.abs()
    q = 1 + den
    f = num / q
    return (dnum - f * dden) / q


def rational_gains(numerator: Tensor, denominator: Tensor, version: str = "A") -> tuple[Tensor, Tensor]:
    r"""Gaussian gains ``(E[F^2], E[F'^2])`` for :math:`x \sim \mathcal N(0,1)`, each ``(groups,)``,
    float64, by numerical integration (differentiable in the coefficients)."""
    return _gains(numerator, denominator, version, 1.0)


def _gains(numerator: Tensor, denominator: Tensor, version: str, sigma: float) -> tuple[Tensor, Tensor]:
    a = numerator.to(torch.float64)
    b = denominator.to(torch.float64)
    z = torch.linspace(-12.0, 12.0, 24001, dtype=torch.float64, device=a.device)
    weight = torch.exp(-0.5 * z**2) / math.sqrt(2 * math.pi)
    x = (sigma * z).expand(a.shape[0], -1)
    cols_a = [a[:, i : i + 1] for i in range(a.shape[1])]
    cols_b = [b[:, j : j + 1] for j in range(b.shape[1])]
    f = rational_value(x, cols_a, cols_b, version)
    d = rational_derivative(x, cols_a, cols_b, version)
    return torch.trapezoid(f**2 * weight, z, dim=-1), torch.trapezoid(d**2 * weight, z, dim=-1)


def rational_gains_at(numerator: Tensor, denominator: Tensor, variance: float, version: str = "A") -> tuple[float, float]:
    """Gains of group 0 for x ~ N(0, variance)."""
    f, d = _gains(numerator[:1], denominator[:1], version, math.sqrt(variance))
    return f[0].item(), d[0].item()


def rational_identity(degree) -> dict[str, list[float]]:
    """P(x) = x, Q = 1, KAT's init of its first activation (denominator exactly zero, as KAT's).

    Note: |.| has a zero derivative at 0 (as ``torch.abs``), so a denominator that is exactly zero
    receives zero gradient and stays zero: from this init only the numerator learns."""
    m, n = degree
    return {"numerator": [0.0, 1.0] + [0.0] * (m - 1), "denominator": [0.0] * n}


def rational_fit_start(x, w, f, df, degree, match_derivative: bool, version: str = "A") -> dict[str, Tensor]:
    """Linearised Padé least squares: ``P(x) - f(x) S(x) ~ f(x)`` with ``S = sum_j b_j x^j`` is linear in
    (a, b) (exact where the safe denominator equals 1 + S); the refinement then fits the safe form."""
    m, n = degree
    powers = torch.stack([x**i for i in range(max(m, n) + 1)], dim=-1)
    rows = torch.cat([powers[:, : m + 1], -f.unsqueeze(-1) * powers[:, 1 : n + 1]], dim=-1)
    solution = weighted_lstsq(rows, f, w)
    return {"numerator": solution[: m + 1], "denominator": solution[m + 1 :]}
