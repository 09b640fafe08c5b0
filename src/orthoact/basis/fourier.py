r"""Truncated Fourier series with learnable frequencies (paper, Section 3.2).

.. math::
    F(x) = b + \sum_{k=1}^{n} \frac{c_k}{k!} \cos(w_k x - \varphi_k),\qquad
    F'(x) = -\sum_{k=1}^{n} \frac{c_k w_k}{k!} \sin(w_k x - \varphi_k).

Gaussian moments used for the closed-form gains (:math:`x \sim \mathcal N(0,1)`):
:math:`E[\cos(wx - p)] = \cos p\, e^{-w^2/2}`,
:math:`E[\cos(ax-p)\cos(bx-q)] = \tfrac12[\cos(p-q)e^{-(a-b)^2/2} + \cos(p+q)e^{-(a+b)^2/2}]`,
and the same with a minus sign on the second term for :math:`\sin\cdot\sin`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

#: :math:`I_0(2) = \sum_k 1/(k!)^2`, the modified Bessel function the paper's init normalises by.
I0_2 = math.fsum(1.0 / math.factorial(k) ** 2 for k in range(40))


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
        out = out + (c / math.factorial(k)) * torch.cos(w * x - p)
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
        out = out - (c * w / math.factorial(k)) * torch.sin(w * x - p)
    return out


def fourier_paper_init(degree: int) -> dict[str, list[float]]:
    r"""torchortho 0.1.2's init: :math:`c_k = I_0(2)^{-1/2}`, :math:`b = I_0(2)^{-1/2}\sqrt{1-1/(n!)^2}`,
    :math:`\varphi_k = \pi/4`, :math:`w_k = k`."""
    scale = I0_2 ** -0.5
    return {
        "bias": [scale * math.sqrt(1.0 - 1.0 / math.factorial(degree) ** 2)],
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
    inv_factorial = torch.tensor(
        [1.0 / math.factorial(k) for k in range(1, n + 1)], dtype=f64, device=bias.device
    )
    d = coefficients.to(f64) * inv_factorial  # amplitude of each cosine
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
