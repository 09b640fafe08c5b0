"""Numerical helpers shared by the basis families (pure math)."""

from __future__ import annotations

import math

import torch
from torch import Tensor


def inv_factorial(k: int) -> float:
    """:math:`1/k!` as a float: correctly rounded up to k = 170, then ``exp(-lgamma(k+1))``, which
    underflows gracefully (to subnormals, then 0) where ``math.factorial`` would overflow a float."""
    if k <= 170:
        return 1.0 / math.factorial(k)
    return math.exp(-math.lgamma(k + 1))


def inv_factorials(first: int, last: int, dtype=torch.float64, device=None) -> Tensor:
    """``[1/first!, ..., 1/last!]`` as a tensor."""
    return torch.tensor([inv_factorial(k) for k in range(first, last + 1)], dtype=dtype, device=device)


def weighted_lstsq(rows: Tensor, rhs: Tensor, weights: Tensor) -> Tensor:
    """Least squares of ``rows @ c ~ rhs`` with non-negative per-row weights (float64, SVD-based)."""
    sw = weights.sqrt().unsqueeze(-1)
    return torch.linalg.lstsq(rows * sw, rhs.unsqueeze(-1) * sw, driver="gelsd").solution.squeeze(-1)
