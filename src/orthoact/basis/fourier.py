r"""Truncated Fourier series with learnable frequencies (paper, Section 3.2).

.. math::
    F(x) = b + \sum_{k=1}^{n} \frac{c_k}{k!} \cos(w_k x - \varphi_k),\qquad
    F'(x) = -\sum_{k=1}^{n} \frac{c_k w_k}{k!} \sin(w_k x - \varphi_k).

Gaussian moments used for the closed-form gains (:math:`x \sim \mathcal N(0,1)`):
:math:`E[\cos(wx - p)] = \cos p\, e^{-w^2/2}`,
:math:`E[\cos(ax-p)\cos(bx-q)] = \tfrac12[\cos(p-q)e^{-(a-b)^2/2} + \cos(p+q)e^{-(a+b)^2/2}]`,
and the same with a minus sign on the second term for :math:`\sin\cdot\sin`.

The factor :math:`1/k!` is computed in floating point (:func:`~orthoact.basis._common.inv_factorial`),
so any degree works; above :math:`k \approx 34` it is below float32's range and those terms vanish
in float32 arithmetic.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from orthoact.basis._common import inv_factorial, inv_factorials, weighted_lstsq

#: :math:`I_0(2) = \sum_k 1/(k!)^2`, the modified Bessel function the paper's init normalises by.
I0_2 = math.fsum(inv_factorial(k) ** 2 for k in range(40))


def fourier_series(
    x: Tensor,
    bias: Tensor | float,
    coefficients: Sequence[Tensor | float],
    frequencies: Sequence[Tensor | float],
    phases: Sequence[Tensor | float],
) -> Tensor:
    """Evaluate the series; every parameter is a number or a tensor broadcastable to ``x``."""
    out = bias + torch.zeros_like(x)
    for k, (c, w, p) in enumerate(zip(coefficients, frequencies, phases), start=1):
        out = out + (c * inv_factorial(k)) * torch.cos(w * x - p)
    return out


def fourier_series_derivative(
    x: Tensor,
    coefficients: Sequence[Tensor | float],
    frequencies: Sequence[Tensor | float],
    phases: Sequence[Tensor | float],
) -> Tensor:
    """Derivative of :func:`fourier_series` with respect to ``x``."""
    out = torch.zeros_like(x)
    for k, (c, w, p) in enumerate(zip(coefficients, frequencies, phases), start=1):
        out = out - (c * w * inv_factorial(k)) * torch.sin(w * x - p)
    return out


def fourier_paper_init(degree: int) -> dict[str, list[float]]:
    r"""torchortho 0.1.2's init: :math:`c_k = I_0(2)^{-1/2}`, :math:`b = I_0(2)^{-1/2}\sqrt{1-1/(n!)^2}`,
    :math:`\varphi_k = \pi/4`, :math:`w_k = k`."""
    scale = I0_2 ** -0.5
    return {
        "bias": [scale * math.sqrt(1.0 - inv_factorial(degree) ** 2)],
        "coefficients": [scale] * degree,
        "frequencies": [float(k) for k in range(1, degree + 1)],
        "phases": [math.pi / 4] * degree,
    }


def fourier_gains(
    bias: Tensor, coefficients: Tensor, frequencies: Tensor, phases: Tensor
) -> tuple[Tensor, Tensor]:
    r"""Closed-form gains for :math:`x \sim \mathcal N(0,1)`.

    Args:
        bias: ``(groups, 1)``; coefficients, frequencies, phases: ``(groups, degree)``.

    Returns:
        ``(E[F^2], E[F'^2])``, each of shape ``(groups,)``, in float64.
    """
    f64 = torch.float64
    b = bias.to(f64)[..., 0]
    w = frequencies.to(f64)
    p = phases.to(f64)
    n = coefficients.shape[-1]
    d = coefficients.to(f64) * inv_factorials(1, n, device=bias.device)  # amplitude of each cosine
    # Pairwise terms (groups, n, n).
    w_minus = w[..., :, None] - w[..., None, :]
    w_plus = w[..., :, None] + w[..., None, :]
    p_minus = p[..., :, None] - p[..., None, :]
    p_plus = p[..., :, None] + p[..., None, :]
    same = torch.cos(p_minus) * torch.exp(-0.5 * w_minus.square())
    opposite = torch.cos(p_plus) * torch.exp(-0.5 * w_plus.square())
    cos_cos = 0.5 * (same + opposite)
    sin_sin = 0.5 * (same - opposite)
    mean_cos = torch.cos(p) * torch.exp(-0.5 * w.square())
    outer = d[..., :, None] * d[..., None, :]
    forward = b.square() + 2 * b * (d * mean_cos).sum(-1) + (outer * cos_cos).sum((-1, -2))
    dw = d * w
    backward = (dw[..., :, None] * dw[..., None, :] * sin_sin).sum((-1, -2))
    return forward, backward


def fourier_gains_at(bias, coefficients, frequencies, phases, variance: float) -> tuple[float, float]:
    """Gains of group 0 for x ~ N(0, variance): G(z) = F(sigma z) is the series with frequencies
    scaled by sigma, and G' = sigma F'."""
    sigma = math.sqrt(variance)
    f, d = fourier_gains(bias[:1], coefficients[:1], frequencies[:1] * sigma, phases[:1])
    return f[0].item(), d[0].item() / variance


def fourier_fit_start(x, w, f, df, degree: int, match_derivative: bool) -> dict[str, Tensor]:
    """With the frequencies fixed at w_k = k the series is linear in (b, c_k cos phi_k, c_k sin phi_k):
    least squares on value (and derivative) rows, then back to amplitudes and phases.

    Harmonics whose 1/k! is below 1e-30 (k >= 28) are left at zero: their c_k would have to exceed
    float32's range to matter.
    """
    usable = max(k for k in range(1, degree + 1) if k == 1 or inv_factorial(k) >= 1e-30)
    k = torch.arange(1, usable + 1, dtype=torch.float64)
    kx = x.unsqueeze(-1) * k
    cos, sin = torch.cos(kx), torch.sin(kx)
    ones = torch.ones_like(x).unsqueeze(-1)
    rows, rhs, weights = [torch.cat([ones, cos, sin], -1)], [f], [w]
    if match_derivative:
        rows.append(torch.cat([torch.zeros_like(ones), -k * sin, k * cos], -1))
        rhs.append(df)
        weights.append(w)
    sol = weighted_lstsq(torch.cat(rows), torch.cat(rhs), torch.cat(weights))
    alpha, beta = sol[1 : usable + 1], sol[usable + 1 :]
    # b + sum (c_k/k!) cos(kx - phi_k) = b + sum (c_k/k!)(cos phi_k cos kx + sin phi_k sin kx)
    rest = torch.zeros(degree - usable, dtype=torch.float64)
    return {
        "bias": sol[:1],
        "coefficients": torch.cat([torch.sqrt(alpha**2 + beta**2) / inv_factorials(1, usable), rest]),
        "frequencies": torch.arange(1, degree + 1, dtype=torch.float64),
        "phases": torch.cat([torch.atan2(beta, alpha), rest]),
    }
