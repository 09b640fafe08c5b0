r"""Tropical (max-plus) polynomials and rational functions (paper, Section 3.3).

Tropical polynomial with fixed slopes :math:`k = 0..n` and learnable offsets:

.. math:: F(x) = \frac{\sqrt 2}{n} \max_{k=0..n} (k x + a_k).

Tropical rational function, a difference of two max-plus polynomials with learnable slopes:

.. math:: F(x) = \max_k (p_k x + a_k) - \max_k (q_k x + b_k).

Both are piecewise linear, so their Gaussian gains :math:`E[F^2]`, :math:`E[F'^2]` are exact sums
over the linear pieces of truncated Gaussian moments (:func:`gaussian_interval_moments`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor


def tropical_scale(degree: int) -> float:
    r"""The constant :math:`\sqrt2 / n` in front of the tropical polynomial."""
    return math.sqrt(2.0) / degree


def max_affine(x: Tensor, slopes: Sequence[Tensor | float | None], offsets: Sequence[Tensor | float]) -> Tensor:
    r""":math:`\max_k (s_k x + o_k)`; a slope of ``None`` means a constant piece (no ``0 * x``, so
    :math:`x = \pm\infty` gives a finite constant there instead of NaN).

    The pieces are stacked and reduced with ``max(-1)``: NaN propagates, and the gradient goes to the
    first arg-max on ties.
    """
    pieces = []
    for s, o in zip(slopes, offsets):
        pieces.append((o + torch.zeros_like(x)) if s is None else s * x + o)
    return torch.stack(pieces, dim=-1).max(dim=-1).values


def gaussian_interval_moments(lower: Tensor, upper: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    r"""Truncated standard-normal moments :math:`E[x^j 1\{l < x < u\}]` for :math:`j = 0, 1, 2`.

    :math:`M_0 = \Phi(u) - \Phi(l)`, :math:`M_1 = \varphi(l) - \varphi(u)`,
    :math:`M_2 = M_0 + l\varphi(l) - u\varphi(u)`; infinite bounds are allowed.
    """

    def pdf(t: Tensor) -> Tensor:
        return torch.exp(-0.5 * t.square()) / math.sqrt(2 * math.pi)

    def cdf(t: Tensor) -> Tensor:
        return 0.5 * torch.erfc(-t / math.sqrt(2.0))

    def t_pdf(t: Tensor) -> Tensor:
        return torch.where(torch.isinf(t), torch.zeros_like(t), t * pdf(t))

    m0 = cdf(upper) - cdf(lower)
    m1 = pdf(lower) - pdf(upper)
    m2 = m0 + t_pdf(lower) - t_pdf(upper)
    return m0, m1, m2


def _crossings(slopes: Tensor, offsets: Tensor) -> Tensor:
    """All pairwise crossing points of the lines ``s_i x + o_i`` (groups, m*(m-1)/2).

    Parallel pairs never cross; they contribute the point 0, which only adds an empty interval.
    """
    i, j = torch.triu_indices(slopes.shape[-1], slopes.shape[-1], offset=1, device=slopes.device)
    ds = slopes[..., i] - slopes[..., j]
    parallel = ds == 0
    safe = torch.where(parallel, torch.ones_like(ds), ds)
    return torch.where(parallel, torch.zeros_like(ds), (offsets[..., j] - offsets[..., i]) / safe)


def _active_line(slopes: Tensor, offsets: Tensor, points: Tensor) -> tuple[Tensor, Tensor]:
    """Slope and offset of the arg-max line at each point; shapes (groups, P)."""
    values = slopes[..., None, :] * points[..., :, None] + offsets[..., None, :]
    index = values.argmax(-1)
    return slopes.gather(-1, index), offsets.gather(-1, index)


def _piecewise_linear_gains(candidates: Tensor, line_fn) -> tuple[Tensor, Tensor]:
    """Integrate a continuous piecewise-linear function against N(0, 1).

    ``candidates`` (groups, m) contains every point where the function may change its linear piece;
    ``line_fn(points)`` returns the slope and intercept of the piece active at each point.
    """
    t, _ = candidates.sort(-1)
    inf = torch.full_like(t[..., :1], math.inf)
    lower = torch.cat([-inf, t], -1)
    upper = torch.cat([t, inf], -1)
    # A point strictly inside each interval (the end intervals are unbounded).
    inside = torch.cat([t[..., :1] - 1.0, 0.5 * (t[..., :-1] + t[..., 1:]), t[..., -1:] + 1.0], -1)
    slope, intercept = line_fn(inside)
    m0, m1, m2 = gaussian_interval_moments(lower, upper)
    forward = (slope.square() * m2 + 2 * slope * intercept * m1 + intercept.square() * m0).sum(-1)
    backward = (slope.square() * m0).sum(-1)
    return forward, backward


def tropical_gains(offsets: Tensor) -> tuple[Tensor, Tensor]:
    r"""Exact Gaussian gains of :math:`\frac{\sqrt2}{n}\max_k(kx + a_k)`; offsets ``(groups, n+1)``."""
    a = offsets.to(torch.float64)
    n = a.shape[-1] - 1
    k = torch.arange(n + 1, dtype=torch.float64, device=a.device).expand_as(a)
    scale = tropical_scale(n)

    def line(points):
        s, o = _active_line(k, a, points)
        return scale * s, scale * o

    return _piecewise_linear_gains(_crossings(k, a), line)


def tropical_rational_gains(
    slopes_num: Tensor, offsets_num: Tensor, slopes_den: Tensor, offsets_den: Tensor
) -> tuple[Tensor, Tensor]:
    r"""Exact Gaussian gains of :math:`\max_k(p_kx + a_k) - \max_k(q_kx + b_k)`; each ``(groups, n+1)``."""
    p, a, q, b = (t.to(torch.float64) for t in (slopes_num, offsets_num, slopes_den, offsets_den))

    def line(points):
        s_num, o_num = _active_line(p, a, points)
        s_den, o_den = _active_line(q, b, points)
        return s_num - s_den, o_num - o_den

    return _piecewise_linear_gains(torch.cat([_crossings(p, a), _crossings(q, b)], -1), line)


def tropical_gains_at(offsets: Tensor, variance: float) -> tuple[float, float]:
    """Gains of group 0 for x ~ N(0, variance): F(sigma z) is a max of lines with slopes scaled by
    sigma, integrated exactly as a tropical rational function with a zero denominator."""
    a = offsets.detach().to(torch.float64)[:1]
    n = a.shape[1] - 1
    s = tropical_scale(n)
    slopes = s * math.sqrt(variance) * torch.arange(n + 1, dtype=torch.float64).unsqueeze(0)
    zeros = torch.zeros(1, 1, dtype=torch.float64)
    f, d = tropical_rational_gains(slopes, s * a, zeros, zeros)
    return f[0].item(), d[0].item() / variance


def tropical_rational_gains_at(slopes_num, offsets_num, slopes_den, offsets_den, variance: float) -> tuple[float, float]:
    """Gains of group 0 for x ~ N(0, variance) (slopes scaled by sigma, G' = sigma F')."""
    sigma = math.sqrt(variance)
    p, a, q, b = (t.detach().to(torch.float64)[:1] for t in (slopes_num, offsets_num, slopes_den, offsets_den))
    f, d = tropical_rational_gains(p * sigma, a, q * sigma, b)
    return f[0].item(), d[0].item() / variance


def tropical_fit_start(x, w, f, df, degree: int, match_derivative: bool) -> dict[str, Tensor]:
    """Supporting lines of f with the fixed slopes: the best convex minorant, then offsets.

    ``scale * (k x + a_k) <= f(x)`` for all samples gives ``a_k = min_i (f(x_i)/scale - k x_i)``.
    """
    scale = tropical_scale(degree)
    k = torch.arange(degree + 1, dtype=torch.float64)
    return {"offsets": (f.unsqueeze(-1) / scale - x.unsqueeze(-1) * k).min(0).values}


def tropical_rational_fit_start(x, w, f, df, degree: int, match_derivative: bool) -> dict[str, Tensor]:
    """Piecewise-linear interpolant of f split into convex minus convex, each a max of <= n+1 lines."""
    lo, hi = x.min().item(), x.max().item()
    knots = torch.linspace(lo, hi, 2 * degree + 2, dtype=torch.float64)
    fk = torch.from_numpy(np.interp(knots.numpy(), x.numpy(), f.numpy()))
    slopes = (fk[1:] - fk[:-1]) / (knots[1:] - knots[:-1])
    change = slopes[1:] - slopes[:-1]  # at interior knots
    interior = knots[1:-1]
    pos = [(c.item(), t.item()) for c, t in zip(change, interior) if c > 0]
    neg = [(-c.item(), t.item()) for c, t in zip(change, interior) if c < 0]
    # At most n slope changes fit in each max: keep the largest.
    pos = sorted(sorted(pos, reverse=True)[:degree], key=lambda p: p[1])
    neg = sorted(sorted(neg, reverse=True)[:degree], key=lambda p: p[1])

    def lines(changes, base_slope, base_offset):
        s, o = [base_slope], [base_offset]
        for c, t in changes:  # adding c * (x - t) after knot t
            s.append(s[-1] + c)
            o.append(o[-1] - c * t)
        while len(s) < degree + 1:  # duplicates of the last line change nothing
            s.append(s[-1])
            o.append(o[-1])
        return torch.tensor(s, dtype=torch.float64), torch.tensor(o, dtype=torch.float64)

    s0 = slopes[0].item()
    p, a = lines(pos, s0, fk[0].item() - s0 * lo)
    q, b = lines(neg, 0.0, 0.0)
    return {"slopes_num": p, "offsets_num": a, "slopes_den": q, "offsets_den": b}
